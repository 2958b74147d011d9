"""Utilities: validate-config, list-sets, inspect, merge-shards."""

import subprocess

from spurlab.cli import tools
from spurlab.config import set_names
from tests.cli.commands import TINY, assert_listed, refused, run
from tests.conftest import ROOT, load_yaml, spurlab_exe


def test_commands_are_listed_as_utilities():
    assert_listed({c.name: c.stage for c in tools.COMMANDS})
    assert {c.stage for c in tools.COMMANDS} == {"utilities"}


def test_validate_config_and_a_bad_one(tmp_path, capsys):
    rc, out, _ = run(["validate-config", "-c", TINY], capsys)
    assert rc == 0 and out == f"ok: {TINY} is a valid spurlab config\n"
    (tmp_path / "bad.yaml").write_text("seed: [1\n")
    assert refused(["validate-config", "-c", tmp_path / "bad.yaml"], capsys).startswith(str(tmp_path / "bad.yaml"))


def test_list_sets_prints_the_configs_sets(capsys):
    rc, out, _ = run(["list-sets", "-c", TINY], capsys)
    assert rc == 0 and out.split() == set_names(load_yaml("tiny.yaml"))


def test_list_sets_as_a_process(tiny_cfg):
    r = subprocess.run(
        [spurlab_exe(), "list-sets", "-c", str(ROOT / "config" / "tiny.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    names = r.stdout.split()
    assert names[:5] == ["train", "val", "test", "counterfactual", "cue_only"]
    assert "bam_k030_test" in names and "contam_blur_train" in names and "contam_stripe_train" not in names


def test_inspect_refuses_a_file_that_is_not_hdf5(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("text")
    assert refused(["inspect", tmp_path / "x.h5"], capsys).startswith(f"{tmp_path / 'x.h5'}: not a readable HDF5 file")
