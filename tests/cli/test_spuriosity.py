"""Spuriosity Rankings commands (rules/measure.smk, rules/mitigate.smk): listed under their
stages; models, directories and features side by side must pair up."""

from spurlab.cli import spuriosity
from tests.cli.commands import TINY, assert_listed, refused


def test_commands_are_listed_under_their_stages():
    stages = {c.name: c.stage for c in spuriosity.COMMANDS}
    assert_listed(stages)
    assert stages["spuriosity-rankings"] == "measure" and stages["head-tuning"] == "mitigate"


def test_gaps_need_one_directory_and_feature_file_per_model(tmp_path, capsys):
    msg = refused(["spurious-gaps", "-c", TINY, "--rankings", "r.parquet", "--models", "a", "b", "--model-dirs", "a",
                   "b", "--features", "fa.h5", "--out", tmp_path / "g.parquet", "--out-models", tmp_path / "m.parquet",
                   "--out-correlations", tmp_path / "c.parquet"], capsys)  # fmt: skip
    assert msg == "--models and its companions need one entry each: got {'models': 2, 'model_dirs': 2, 'features': 1}"
    assert list(tmp_path.iterdir()) == []
