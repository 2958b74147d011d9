"""The interventions-* commands (rules/interventions.smk, registered by their own module): listed
under measure; names and paths side by side must pair up."""

from spurlab.cli import REGISTRARS
from spurlab.cli.interventions import add_interventions_parsers
from tests.cli.commands import TINY, assert_listed, refused


def test_commands_are_listed_under_measure():
    (names,) = [r.names for r in REGISTRARS if r.add is add_interventions_parsers]
    assert_listed(dict.fromkeys(names, "measure"))
    assert "interventions-summary" in names


def test_models_and_their_directories_must_pair_up(tmp_path, capsys):
    msg = refused(["interventions-bam", "-c", TINY, "--models", "a", "b", "--model-dirs", tmp_path,
                   "--set-names", "s", "--imagesets", "s.h5", "--out", tmp_path / "o.parquet"], capsys)  # fmt: skip
    assert msg == "--models/--model-dirs: 2 names but 1 paths"
    msg = refused(["interventions-bam", "-c", TINY, "--models", "a", "--model-dirs", tmp_path, "--set-names", "s",
                   "--imagesets", "s.h5", "--out", tmp_path / "o.parquet"], capsys)  # fmt: skip
    assert msg == f"{tmp_path / 'meta.json'}: missing (not a spurlab model directory)"
