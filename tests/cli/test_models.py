"""Model commands (rules/models.smk): train, import-checkpoint, features, models-summary."""

from spurlab.cli import models
from tests.cli.commands import TINY, assert_listed, refused


def test_commands_are_listed_under_models():
    assert_listed({c.name: c.stage for c in models.COMMANDS})
    assert {c.stage for c in models.COMMANDS} == {"models"}


def test_import_checkpoint_needs_a_checkpoint_and_refuses_bad_arch_args(tmp_path, capsys):
    out = tmp_path / "m"
    msg = refused(["import-checkpoint", "--model", "m", "--out-dir", out], capsys)
    assert msg == "import-checkpoint: give --checkpoint FILE, or --config with models.<model>.checkpoint"
    msg = refused(["import-checkpoint", "-c", TINY, "--model", "erm_cbr", "--arch-args", "{width: 8}", "--out-dir", out],
                  capsys)  # fmt: skip
    assert msg.startswith("--arch-args: not used with --config")
    msg = refused(["import-checkpoint", "-c", TINY, "--model", "nope", "--out-dir", out], capsys)
    assert msg == "models.nope: not an imported model (no checkpoint) in this config"
    assert not out.exists()
