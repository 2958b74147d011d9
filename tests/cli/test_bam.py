"""BAM commands (rules/bam.smk): listed under their stages; names and paths given side by side
must pair up, and a model directory must hold the model it is named as."""

import json

from spurlab.cli import bam
from tests.cli.commands import TINY, assert_listed, refused


def test_commands_are_listed_under_their_stages():
    stages = {c.name: c.stage for c in bam.COMMANDS}
    assert_listed(stages)
    # BAM models are trained by `spurlab train` (one training entry point), not by a command here
    assert stages["bam-verify"] == "measure" and "bam-train" not in stages


def test_names_and_paths_must_pair_up(tmp_path, capsys):
    (tmp_path / "f_o").mkdir()
    (tmp_path / "f_o" / "meta.json").write_text(json.dumps({"name": "f_s"}))
    base = [
        "bam-verify",
        "-c",
        TINY,
        "--set-names",
        "bam_os_test",
        "--imagesets",
        "x.h5",
        "--out",
        tmp_path / "v.parquet",
    ]
    msg = refused([*base, "--models", "f_o", "f_s", "--model-dirs", tmp_path / "f_o"], capsys)
    assert msg.startswith("--models and its companions need one entry each: got {'models': 2, 'model_dirs': 1}")
    msg = refused([*base, "--models", "f_o", "--model-dirs", tmp_path / "f_o"], capsys)
    assert "holds model 'f_s' (meta.json name), not 'f_o' as --models says" in msg
    assert not (tmp_path / "v.parquet").exists()
