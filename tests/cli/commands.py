"""Helpers of the command-line tests: `spurlab ARGS` run in this process, a refusal's one line, and
a family's commands as the parser lists them."""

from __future__ import annotations

from spurlab.cli import COMMAND_STAGES, main, make_parser
from tests.conftest import ROOT

TINY = str(ROOT / "config" / "tiny.yaml")


def run(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `spurlab argv` (argparse's exits included)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def refused(argv, capsys) -> str:
    """The one line `spurlab: error: ...` of a refused command (exit status 2), without the prefix."""
    rc, _, err = run(argv, capsys)
    assert rc == 2 and err.startswith("spurlab: error: ") and err.count("\n") == 1, (rc, err)
    return err.removeprefix("spurlab: error: ").strip()


def assert_listed(stages: dict[str, str]) -> None:
    """Each command {name: stage} is a subcommand, listed in `spurlab --help` under its stage."""
    sub = make_parser()._subparsers._group_actions[0].choices
    for name, stage in stages.items():
        assert name in COMMAND_STAGES[stage][1], (name, stage)
        assert sub[name].prog == f"spurlab {name}"
