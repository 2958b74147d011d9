"""Stage settings (`spurlab.config.Settings`) against the config schema, and the command table that
builds the CLI from them: every settings field is a schema key, every command's settings build
from the shipped configs, and the rules call only options the commands have."""

from __future__ import annotations

import dataclasses
import re
import shlex
from importlib import import_module

import pytest

from spurlab.cli import COMMANDS, make_parser
from spurlab.cli.table import CONFIG, resolve_settings
from spurlab.config import Settings, config_value, load_config, schema
from tests.conftest import ROOT

SETTINGS_CLASSES = sorted(
    {c.settings for c in COMMANDS if c.settings and ":" in c.settings and not c.settings.startswith("section:")}
)
SECTIONS = sorted({c.settings.partition(":")[2] for c in COMMANDS if c.settings and c.settings.startswith("section:")})
CONFIGS = [["config.yaml"], ["tiny.yaml"], ["folders.yaml"], ["folders.yaml", "imagenet.yaml"]]


def _class(spec: str) -> type:
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


def _schema_node(key: str) -> dict | None:
    """The schema of dotted config `key`, following $refs; None when the schema has no such key."""
    root = schema()
    node = root
    for part in key.split("."):
        while "$ref" in node:
            node = root["$defs"][node["$ref"].split("/")[-1]]
        props = node.get("properties", {})
        if part not in props:
            return None
        node = props[part]
    return node


@pytest.mark.parametrize("spec", SETTINGS_CLASSES)
def test_every_settings_field_is_a_schema_key(spec):
    cls = _class(spec)
    assert issubclass(cls, Settings) and dataclasses.is_dataclass(cls), spec
    keys = cls.config_keys()
    assert keys, f"{spec}: no field is read from the config"
    missing = {field: key for field, key in keys.items() if _schema_node(key) is None}
    assert missing == {}, f"{spec}: fields whose config key the schema lacks"


@pytest.mark.parametrize("key", SECTIONS)
def test_every_section_a_command_reads_is_in_the_schema(key):
    assert _schema_node(key) is not None


@pytest.mark.parametrize("files", CONFIGS, ids="+".join)
def test_every_command_builds_its_settings_from_the_shipped_configs(files):
    cfg = load_config([ROOT / "config" / f for f in files])
    for command in COMMANDS:
        if command.settings is None:
            continue
        settings = resolve_settings(command.settings, cfg)
        if command.settings == CONFIG:
            assert settings is cfg
        elif isinstance(settings, Settings):  # each field the config gives is the config's value
            for field, key in type(settings).config_keys().items():
                given = config_value(cfg, key, default=None)
                if given is not None:
                    assert getattr(settings, field) == given or command.name == "npca-components", (command.name, field)


def test_an_absent_optional_key_keeps_the_default():
    from spurlab.measure.noise import NoiseSettings

    cfg = load_config(ROOT / "config" / "tiny.yaml")
    assert NoiseSettings.from_config({}) == NoiseSettings()
    s = NoiseSettings.from_config(cfg)
    assert list(s.sigmas) == cfg["salient"]["noise"]["sigmas"] and s.seed == cfg["salient"]["noise"]["seed"]


def _rule_calls():
    """(rule file, subcommand, options) of every `spurlab` call in rules/*.smk."""
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for shell in re.findall(r'shell:\s*\n((?:\s+(?:f?"[^\n]*"|\(|\))\n)+)', smk.read_text()):
            text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', shell))
            for call in re.findall(r"spurlab ([a-z-]+)([^>]*)", text):
                yield smk.name, call[0], [t for t in shlex.split(call[1]) if t.startswith("--")]


def test_rules_call_only_options_their_commands_have():
    sub = make_parser()._subparsers._group_actions[0].choices
    calls = list(_rule_calls())
    assert len({c for _, c, _ in calls}) >= 40, "the rules' spurlab calls were not found"
    for smk, command, options in calls:
        assert command in sub, f"{smk}: spurlab {command} does not exist"
        known = {o for a in sub[command]._actions for o in a.option_strings}
        assert set(options) - known == set(), f"{smk}: spurlab {command} has no option {set(options) - known}"


def test_a_table_command_and_a_registrar_module_make_subcommands(capsys):
    """A new command is one table entry; a module in the older style (add_*_parsers(sub,
    config_arg)) registers through a Registrar. Both are listed under their stage in --help."""
    from spurlab.cli.table import Command, Registrar, path, section

    seen = {}

    def handler(settings, args):
        seen["table"] = (settings, args.out)
        return 0

    def add_old_style(sub, config_arg):
        p = sub.add_parser("demo-old", help="an older-style command (rule demo_old)")
        config_arg(p)
        p.set_defaults(func=lambda args: seen.setdefault("old", args.config) and 0)

    table = (Command("demo-table", "mitigate", "a table command (rule demo)", handler, (path("--out"),),
                     settings=section("salient.noise")),)  # fmt: skip
    parser = make_parser(table, (Registrar(add_old_style, "mitigate", ("demo-old",)),))
    tiny = str(ROOT / "config" / "tiny.yaml")
    args = parser.parse_args(["demo-table", "--config", tiny, "--out", "x.parquet"])
    assert args.func(args) == 0 and seen["table"][0] == load_config(tiny)["salient"]["noise"]
    args = parser.parse_args(["demo-old", "--config", tiny])
    assert args.func(args) == 0 and seen["old"] == [tiny]
    help_text = parser.format_help()
    assert re.search(r"mitigate: .*\n  demo-table +a table command\n  demo-old +an older-style command\n", help_text)
