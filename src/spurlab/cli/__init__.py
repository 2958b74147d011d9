"""Command-line interface: one subcommand per pipeline rule, plus tools to look at outputs.

Every subcommand is one entry of a command table (`spurlab.cli.table.Command`: name, stage, help,
handler, command-line arguments, where its settings come from); `make_parser` builds the parser
from `COMMANDS`. Each module of this package holds one family's commands and handlers (datasets,
models, salient, spuriosity, npca, bam, posthoc, report, tools); a new module adds its `COMMANDS`
to the list below (or, in the older style, an `add_*_parsers(sub, config_arg)` function to
`REGISTRARS`). Every Snakemake rule calls one of these with explicit paths. Bad input exits with
status 2 and a single line `spurlab: error: <what and where>`; nothing is left under the output path.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import SpurlabError
from ..io.code import running
from . import bam, datasets, models, npca, posthoc, report, salient, spuriosity, tools
from .interventions import add_interventions_parsers
from .mitigation import add_mitigation_parsers
from .table import STAGES, Command, Registrar, add_command, config_arg

COMMANDS: tuple[Command, ...] = (
    *datasets.COMMANDS,
    *models.COMMANDS,
    *salient.COMMANDS,
    *spuriosity.COMMANDS,
    *npca.COMMANDS,
    *bam.COMMANDS,
    *posthoc.COMMANDS,
    *report.COMMANDS,
    *tools.COMMANDS,
)
REGISTRARS: tuple[Registrar, ...] = (
    # interventional checks (rules/interventions.smk)
    Registrar(add_interventions_parsers, "measure", ("interventions-bam", "interventions-posthoc",
                                                     "interventions-background", "interventions-summary")),
    # group robustness, DFR, JTT (rules/mitigation.smk)
    Registrar(add_mitigation_parsers, "mitigate", ("group-robustness", "mitigation-summary")),
)  # fmt: skip


def command_stages(commands: tuple[Command, ...], registrars: tuple[Registrar, ...] = ()) -> dict:
    """stage -> (what, command names), in table order: how `spurlab --help` groups the commands."""
    return {
        stage: (what, tuple(c.name for c in commands if c.stage == stage)
                + tuple(n for r in registrars if r.stage == stage for n in r.names))
        for stage, what in STAGES.items()
    }  # fmt: skip


COMMAND_STAGES = command_stages(COMMANDS, REGISTRARS)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors (missing option, bad value) as the usual one line
    `spurlab: error: ...` and exit status 2; `-h` still shows the usage."""

    def error(self, message: str):
        sub = self.prog.partition(" ")[2]
        where = f"{sub}: " if sub else ""
        hint = f" (see {self.prog} -h)"
        self.exit(2, f"spurlab: error: {where}{' '.join(message.split())}{hint}\n")


def _list_commands_by_stage(parser: argparse.ArgumentParser, sub, stages: dict) -> None:
    """Replace argparse's flat list of subcommands by one grouped by stage, one line per command
    (its help without the trailing "(rule ...)")."""
    helps = {a.dest: re.sub(r"\s*\(rules? [^)]*\)$", "", a.help or "") for a in sub._choices_actions}
    width = max(map(len, helps)) + 2
    staged = {c for _, commands in stages.values() for c in commands}
    groups = [(stage, what, [c for c in commands if c in helps]) for stage, (what, commands) in stages.items()]
    groups.append(("other", "not yet in spurlab.cli.COMMAND_STAGES", [c for c in helps if c not in staged]))
    lines = ["commands by stage (spurlab COMMAND -h for a command's options):"]
    for stage, what, commands in groups:
        if commands:
            lines += ["", f"{stage}: {what}"] + [f"  {c:<{width}}{helps[c]}" for c in commands]
    parser.epilog = "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.usage = "%(prog)s [-h] [--version] COMMAND ..."
    sub.help = argparse.SUPPRESS  # the grouped list above replaces the flat one


def make_parser(commands: tuple[Command, ...] = COMMANDS, registrars: tuple[Registrar, ...] = REGISTRARS):
    """The `spurlab` parser: one subparser per command of the table, then the registrars'."""
    from .. import __version__

    parser = _Parser(
        prog="spurlab", description="Discover, measure and mitigate spurious features in image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"spurlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        add_command(sub, command)
    for registrar in registrars:
        registrar.add(sub, config_arg)
    _list_commands_by_stage(parser, sub, command_stages(commands, registrars))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        # what the command writes records the hash of the code it can run (docs/architecture.md#code-provenance)
        with running(args.command):
            return args.func(args)
    except SpurlabError as e:
        print(f"spurlab: error: {e}", file=sys.stderr)
        return 2
