"""Report commands (rules/report.smk): listed under report; the summaries come as KEY=PATH."""

import json

import pandas as pd

from spurlab.cli import report
from tests.cli.commands import TINY, assert_listed, refused, run


def test_commands_are_listed_under_report():
    assert_listed({c.name: c.stage for c in report.COMMANDS})
    assert {c.stage for c in report.COMMANDS} == {"report"}


def test_report_tables_from_one_summary_and_a_bad_pair(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps({"n_pairs": 4, "n_spurious": 1}))
    out, md = tmp_path / "metrics.parquet", tmp_path / "summary.md"
    msg = refused(["report-tables", "-c", TINY, "--summary", "salient", "--out", out, "--summary-md", md], capsys)
    assert msg == "--summary: 'salient' is not KEY=PATH"
    rc, stdout, _ = run(["report-tables", "-c", TINY, "--summary", f"salient={tmp_path / 's.json'}", "--out", out,
                         "--summary-md", md], capsys)  # fmt: skip
    assert rc == 0 and stdout.startswith(f"{out}: 2 rows from 1 stage summaries and 0 tables")
    df = pd.read_parquet(out)
    assert sorted(df["metric"]) == ["n_pairs", "n_spurious"] and "## Salient ImageNet" in md.read_text()
