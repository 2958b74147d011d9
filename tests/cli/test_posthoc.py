"""Post hoc commands (rules/posthoc.smk): listed under their stages; --alpha is a number in (0, 1)."""

import argparse

import pytest

from spurlab.cli import posthoc
from tests.cli.commands import assert_listed, refused


def test_commands_are_listed_under_their_stages():
    stages = {c.name: c.stage for c in posthoc.COMMANDS}
    assert_listed(stages)
    assert "posthoc-train" not in stages and stages["posthoc-summary"] == "measure"  # trained by `spurlab train`


def test_significance_is_a_finite_number_in_the_open_unit_interval(tmp_path, capsys):
    assert posthoc.significance("0.05") == 0.05
    for bad in ("0", "1", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"{bad} is not in \\(0, 1\\)"):
            posthoc.significance(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="not a finite number"):
        posthoc.significance("nan")
    msg = refused(
        ["posthoc-study-analyse", "--responses", "r.csv", "--out", tmp_path / "a.json", "--alpha", "2"], capsys
    )
    assert msg.startswith("posthoc-study-analyse: argument --alpha: 2 is not in (0, 1)")
