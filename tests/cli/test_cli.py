"""The CLI: every subcommand listed and documented; inspect summarises a file."""

import subprocess

import numpy as np
import pytest

from spurlab.cli import make_parser
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


def test_make_set_inspect_and_contact_sheet(tmp_path):
    cfg = str(ROOT / "config" / "tiny.yaml")
    out = tmp_path / "cue_only.h5"
    subprocess.run(
        [spurlab_exe(), "make-set", "-c", cfg, "--set", "cue_only", "--out", str(out), "--quiet"], check=True
    )
    r = subprocess.run([spurlab_exe(), "inspect", str(out), "--verify"], capture_output=True, text=True, check=True)
    assert "image set 'cue_only' (packed), 40 images of 32x32" in r.stdout
    assert "(verified)" in r.stdout and "(none) 40" in r.stdout
    png = tmp_path / "sheet.png"
    subprocess.run([spurlab_exe(), "contact-sheet", str(out), "--out", str(png), "-n", "8"], check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert (pixels < 240).any(axis=2).mean() > 0.2  # the 8 images are drawn, not only titles and a legend
    r = subprocess.run([spurlab_exe(), "make-set", "-c", cfg, "--set", "bam_k050_train", "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "image set 'bam_k050_train': not defined by this config" in r.stderr


def test_list_sets(tiny_cfg):
    r = subprocess.run(
        [spurlab_exe(), "list-sets", "-c", str(ROOT / "config" / "tiny.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    names = r.stdout.split()
    assert names[:5] == ["train", "val", "test", "counterfactual", "cue_only"]
    assert "bam_k030_test" in names and "contam_blur_train" in names and "contam_stripe_train" not in names
