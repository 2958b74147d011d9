"""Image set commands (rules/datasets.smk): make-set, index-folder, datasets-summary, contact-sheet."""

import subprocess

import numpy as np

from spurlab.cli import datasets
from tests.cli.commands import TINY, assert_listed, refused
from tests.conftest import ROOT, spurlab_exe


def test_commands_are_listed_under_data():
    assert_listed({c.name: c.stage for c in datasets.COMMANDS})
    assert {c.stage for c in datasets.COMMANDS} == {"data"}


def test_refusals_name_the_set_or_file(tmp_path, capsys):
    msg = refused(["make-set", "-c", TINY, "--set", "nope", "--out", tmp_path / "x.h5", "--quiet"], capsys)
    assert msg.startswith("image set 'nope': not defined by this config (defined: train, val")
    (tmp_path / "root").mkdir()
    msg = refused(["index-folder", "--root", tmp_path / "root", "--out", tmp_path / "x.h5", "--image-size", "32",
                   "--class-names", tmp_path / "names.txt"], capsys)  # fmt: skip
    assert msg == f"{tmp_path / 'names.txt'}: class names file not found"
    assert not (tmp_path / "x.h5").exists()


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
