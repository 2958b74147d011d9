"""Salient ImageNet commands (rules/salient.smk): listed under their stages; await-answers stops
the pipeline until the human answers exist, in one line."""

from spurlab.cli import salient
from tests.cli.commands import assert_listed, refused


def test_commands_are_listed_under_their_stages():
    stages = {c.name: c.stage for c in salient.COMMANDS}
    assert_listed(stages)
    assert stages["importance"] == "discover" and stages["noise"] == "measure" and stages["fit-head"] == "models"


def test_await_answers_refuses_without_task_pages(tmp_path, capsys):
    (tmp_path / "tasks").mkdir()
    msg = refused(["await-answers", "--tasks", tmp_path / "tasks", "--answers", tmp_path / "a.csv", "--key",
                   tmp_path / "k.csv"], capsys)  # fmt: skip
    assert msg == f"{tmp_path / 'tasks'}: no task pages; run the annotation tasks rule first"
