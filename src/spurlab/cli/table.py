"""The command table: every subcommand described once, and the one builder of the parser.

A command is a `Command`: its name, its stage (the group `spurlab --help` lists it under), a
one-line help, its handler, the arguments it takes on the command line (paths of inputs and
outputs, and run-time options such as threads or a shard, never a config key) and where its
settings come from:

    settings=None             no --config
    settings=CONFIG           --config; the handler gets the merged, validated config (a dict),
                              for stages whose functions read several sections
    settings=section("a.b")   --config; the handler gets that config section (a dict)
    settings="module:Class"   --config; the handler gets Class.from_config(config), a
                              `spurlab.config.Settings` dataclass (imported on use, so that
                              `spurlab --help` imports no stage)

The handler is called as handler(settings, args), `args` being argparse's namespace of the
command-line arguments. A new parameter of a stage is a schema key and a settings field that the
stage function reads: neither the table nor the rule changes (docs/architecture.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import SpurlabError

CONFIG = "config"

# `spurlab --help` lists the subcommands by pipeline stage, in this order
STAGES = {
    "data": "image sets (the generated benchmarks, real-data folders)",
    "models": "train or import models, cache their features",
    "discover": "find spurious features (importance, D(i,j), neural PCA) and annotate them",
    "measure": "how much models rely on them (noise, spuriosity, gaps, scores, attributions)",
    "mitigate": "reduce the reliance (head tuning, SpuFix, DFR, JTT)",
    "report": "one table, figures, the site",
    "utilities": "check configs, look at files, merge shards",
}


def section(key: str) -> str:
    """The settings of a command that reads one config section as a mapping (dotted key)."""
    return f"section:{key}"


@dataclass(frozen=True)
class Arg:
    """One command-line argument: argparse's names and keywords."""

    names: tuple[str, ...]
    options: dict = field(default_factory=dict)


def arg(*names: str, **options) -> Arg:
    """Any argument, in argparse's terms."""
    return Arg(names, options)


def path(name: str, help: str = "", *, required: bool = True, many: bool = False) -> Arg:
    """A file or directory (one, or with `many` one or more); optional ones default to None."""
    options = {"type": Path, "help": help}
    if many:
        options["nargs"] = "+"
    if name.startswith("-"):
        options["required"] = required
    return Arg((name,), options)


def text(name: str, help: str = "", *, required: bool = True, many: bool = False) -> Arg:
    """A name given on the command line (a model, an image set, a part), one or with `many` several."""
    options: dict[str, Any] = {"help": help}
    if many:
        options["nargs"] = "+"
    if name.startswith("-"):
        options["required"] = required
    return Arg((name,), options)


def threads(default: int = 2, help: str = "torch CPU threads") -> Arg:
    return arg("--threads", type=int, default=default, help=help)


QUIET = arg("--quiet", action="store_true", help="no progress bar")
DEVICE = arg("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
BATCH_SIZE = arg("--batch-size", type=int, default=256)
COMPUTE = (DEVICE, BATCH_SIZE, threads(), QUIET)


def _shard(text: str):
    from ..shards import Shard

    try:
        return Shard.parse(text)
    except SpurlabError as e:  # argparse turns this into a one-line usage error
        raise argparse.ArgumentTypeError(str(e)) from None


SHARD = arg("--shard", type=_shard, default="0/1", metavar="I/N",
            help="only shard I of N (contiguous class ranges); merge-shards joins them (default 0/1: all)")  # fmt: skip


@dataclass(frozen=True)
class Command:
    """One subcommand (module docstring). `config_required=False`: --config may be left out, and
    the handler then gets None as its settings."""

    name: str
    stage: str
    help: str
    handler: Callable[[Any, argparse.Namespace], int]
    args: tuple[Arg, ...] = ()
    settings: str | None = None
    config_required: bool = True
    config_help: str = "config file(s); later files override earlier ones key by key, as in Snakemake"


@dataclass(frozen=True)
class Registrar:
    """A module that adds argparse subcommands itself (the older style, `add(sub, config_arg)`
    setting `func=handler(args)` on each): `names` are listed in --help under `stage`."""

    add: Callable
    stage: str
    names: tuple[str, ...]


def resolve_settings(spec: str | None, cfg: dict | None):
    """The settings a handler gets (module docstring) from the merged config `cfg`."""
    if spec is None or cfg is None:
        return None
    if spec == CONFIG:
        return cfg
    if spec.startswith("section:"):
        from ..config import config_value

        return config_value(cfg, spec.partition(":")[2])
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name).from_config(cfg)


def run(command: Command, args: argparse.Namespace) -> int:
    """Load the config (when the command takes one), build its settings, call the handler."""
    cfg = None
    if command.settings is not None and args.config:
        from ..config import load_config

        cfg = load_config(args.config)
    return command.handler(resolve_settings(command.settings, cfg), args)


def config_arg(p: argparse.ArgumentParser, required: bool = True, help: str = Command.config_help) -> None:
    p.add_argument("--config", "-c", nargs="+", required=required, metavar="YAML", help=help)


def add_command(sub, command: Command) -> argparse.ArgumentParser:
    p = sub.add_parser(command.name, help=command.help)
    if command.settings is not None:
        config_arg(p, command.config_required, command.config_help)
    for a in command.args:
        p.add_argument(*a.names, **a.options)
    p.set_defaults(func=lambda args, c=command: run(c, args))
    return p
