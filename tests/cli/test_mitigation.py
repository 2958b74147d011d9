"""The group-robustness and mitigation-summary commands (rules/mitigation.smk): listed under
mitigate; one table and one groups table per model."""

from spurlab.cli import REGISTRARS
from spurlab.cli.mitigation import add_mitigation_parsers
from tests.cli.commands import assert_listed, refused


def test_commands_are_listed_under_mitigate():
    (names,) = [r.names for r in REGISTRARS if r.add is add_mitigation_parsers]
    assert_listed(dict.fromkeys(names, "mitigate"))


def test_summary_needs_one_table_and_groups_table_per_model(tmp_path, capsys):
    msg = refused(["mitigation-summary", "--models", "a", "b", "--tables", "a.parquet", "--groups", "g.parquet",
                   "--out", tmp_path / "s.json", "--out-table", tmp_path / "t.parquet", "--figure",
                   tmp_path / "f.png"], capsys)  # fmt: skip
    assert msg == "--models, --tables and --groups need one entry each: got 2, 1, 1"
    assert list(tmp_path.iterdir()) == []
