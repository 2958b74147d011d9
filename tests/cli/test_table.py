"""The command table: argument builders, where a command's settings come from, the parser a
command makes (--config only when it has settings), the --shard type's one-line refusal."""

import argparse
from pathlib import Path

from spurlab.cli.table import CONFIG, SHARD, STAGES, Command, add_command, arg, path, resolve_settings, section, text
from spurlab.config import load_config
from spurlab.measure.noise import NoiseSettings
from tests.cli.commands import TINY, refused


def test_argument_builders():
    assert path("file").options == {"type": Path, "help": ""}  # positional: no `required`
    assert path("--out", "x", required=False, many=True).options == {"type": Path, "help": "x", "nargs": "+",
                                                                     "required": False}  # fmt: skip
    assert text("--set").options == {"help": "", "required": True} and "type" not in text("--set").options
    assert arg("-n", type=int, default=3).names == ("-n",) and arg("-n", type=int).options == {"type": int}


def test_settings_come_from_the_config_as_declared():
    cfg = load_config([TINY])
    assert resolve_settings(None, cfg) is None and resolve_settings(CONFIG, None) is None
    assert resolve_settings(CONFIG, cfg) is cfg
    assert resolve_settings(section("salient.annotation"), cfg) == cfg["salient"]["annotation"]
    assert resolve_settings("spurlab.measure.noise:NoiseSettings", cfg) == NoiseSettings.from_config(cfg)


def test_a_command_makes_its_subparser_and_passes_its_settings():
    seen = []
    plain = Command("plain", "utilities", "h", lambda s, a: seen.append((s, a.file)) or 0, (path("file"),))
    configured = Command("configured", "data", "h", lambda s, a: seen.append(s) or 0, settings=section("seed"))
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    for c in (plain, configured):
        add_command(sub, c)
    a = p.parse_args(["plain", "x.h5"])
    assert not hasattr(a, "config") and a.func(a) == 0 and seen[-1] == (None, Path("x.h5"))
    a = p.parse_args(["configured", "--config", TINY])
    assert a.func(a) == 0 and seen[-1] == load_config([TINY])["seed"]
    assert set(STAGES) >= {plain.stage, configured.stage}


def test_a_bad_shard_is_one_line(capsys):
    assert SHARD.options["type"]("1/3").__class__.__name__ == "Shard"
    msg = refused(["npca", "--config", TINY, "--features", "f", "--model-dir", "m", "--out", "o.h5", "--shard", "3/2"],
                  capsys)  # fmt: skip
    assert msg.startswith("npca: argument --shard: ") and msg.endswith("(see spurlab npca -h)")
