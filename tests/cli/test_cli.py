"""The CLI (`spurlab.cli`: make_parser, main): every subcommand listed and documented. A family's
commands: tests/cli/test_<family>.py."""

import subprocess

import pytest

from spurlab.cli import command_stages, main, make_parser
from spurlab.cli.table import Command, Registrar
from spurlab.errors import SpurlabError
from tests.conftest import ROOT, spurlab_exe

SUBCOMMANDS = sorted(make_parser()._subparsers._group_actions[0].choices)


def test_help_lists_every_subcommand():
    r = subprocess.run([spurlab_exe(), "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert name in r.stdout
    assert {"make-set", "datasets-summary", "contact-sheet", "inspect", "validate-config", "list-sets"} <= set(
        SUBCOMMANDS
    )


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    r = subprocess.run([spurlab_exe(), name, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: spurlab {name}")


def test_commands_group_by_stage_in_table_order():
    def handler(s, a):
        return 0

    commands = (
        Command("b", "models", "", handler),
        Command("a", "data", "", handler),
        Command("c", "models", "", handler),
    )
    stages = command_stages(commands, (Registrar(print, "models", ("r1", "r2")),))
    assert stages["models"][1] == ("b", "c", "r1", "r2") and stages["data"][1] == ("a",)
    assert stages["report"][1] == () and list(stages)[0] == "data"


def test_main_turns_bad_input_into_one_line_and_status_2(monkeypatch, capsys):
    def fail(cfg, a):
        raise SpurlabError("x.h5:\n  not a spurlab file")

    import spurlab.cli as cli

    commands = tuple(c if c.name != "list-sets" else Command(c.name, c.stage, c.help, fail, c.args, c.settings)
                     for c in cli.COMMANDS)  # fmt: skip
    monkeypatch.setattr(cli, "make_parser", lambda: make_parser(commands))
    assert main(["list-sets", "-c", str(ROOT / "config" / "tiny.yaml")]) == 2
    assert capsys.readouterr().err == "spurlab: error: x.h5: not a spurlab file\n"
    with pytest.raises(SystemExit) as e:
        main(["list-sets"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "spurlab: error: list-sets: the following arguments are required: --config/-c (see spurlab list-sets -h)\n"
    )
