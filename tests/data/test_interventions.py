"""Re-rendering rows with a part removed (spurlab.data.interventions): the unchanged re-render is the
stored set's rows byte for byte, and each intervention changes only the pixels of its part."""

import numpy as np
import pytest

from spurlab.config import load_config
from spurlab.data import contaminate, synth
from spurlab.data.interventions import background_swap, check_same, contamination_twins
from spurlab.errors import SpurlabError
from tests.conftest import ROOT

ROWS = np.array([0, 3, 7, 20, 39])


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config" / "tiny.yaml")


def test_contamination_twins_are_the_stored_rows_and_differ_only_in_their_part(cfg):
    ds, con, seed = cfg["datasets"], cfg["contamination"], cfg["seed"]
    tw = contamination_twins(ds, con, seed, "tag", ROWS)
    spu = contaminate.contamination_plan(ds, con, seed, "tag", "test").chunk(0)
    clean = contaminate.contamination_plan(ds, con, seed, None, "test").chunk(0)
    check_same(tw["original"], spu["images"][ROWS], "contam_tag_test")
    check_same(tw["no_cue"], clean["images"][ROWS], "contam_clean_test")
    assert np.array_equal(tw["object"], spu["masks"]["object"][ROWS]) and np.array_equal(
        tw["cue"], spu["masks"]["tag"][ROWS]
    )
    changed = (tw["no_object"] != tw["original"]).any(-1)
    assert changed.any() and not (changed & ~tw["object"]).any()  # only the object's pixels change
    assert list(tw["labels"]) == list(spu["labels"][ROWS])
    with pytest.raises(SpurlabError, match="re-rendered rows differ"):
        check_same(tw["no_object"], spu["images"][ROWS], "contam_tag_test")
    with pytest.raises(SpurlabError, match="rows must be increasing"):
        contamination_twins(ds, con, seed, "tag", [3, 1])


def test_background_swap_keeps_the_object_and_changes_the_scene(cfg):
    ds, seed = cfg["datasets"], cfg["seed"]
    tw = background_swap(ds, seed, 0, ROWS)
    test = synth.split_plan(synth.World.from_config(ds), seed, "test", ds["n_images"]["test"]).chunk(0)
    check_same(tw["original"], test["images"][ROWS], "test")
    assert all(a != b for a, b in zip(tw["scene"], tw["swapped_scene"]))
    cues = np.zeros_like(tw["object"])
    for name in ds["cues"]:
        if ds["cues"][name]["type"] != "background":
            cues |= test["masks"][name][ROWS].astype(bool)
    keep = tw["object"] & ~cues
    assert np.array_equal(tw["swapped"][keep], tw["original"][keep])
    assert (tw["swapped"] != tw["original"]).any(-1)[~tw["object"]].mean() > 0.5
    # own background cue: a disk (water_bg's class) on water
    disk = ds["classes"].index("disk")
    expect = (tw["labels"] == disk) & test["meta"]["cue_water_bg"][ROWS]
    assert list(tw["own_background_cue"]) == list(expect)
    again = background_swap(ds, seed, 0, ROWS[2:])  # a row's new scene does not depend on the others
    assert list(again["swapped_scene"]) == list(tw["swapped_scene"][2:])
