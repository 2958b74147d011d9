"""BAM compositing (docs/methods.md#bam-compositing): the grid, the three variants, commonality sets, object size."""

from types import SimpleNamespace

import numpy as np
import pytest

from spurlab.data import bam
from spurlab.data.sets import build_plan
from tests.data.test_synth import collect


@pytest.fixture
def sets(default_cfg):
    cfg = default_cfg
    cfg["bam"]["n_per_pair"] = {"train": 2, "test": 1}
    return cfg, {v: collect(build_plan(cfg, f"bam_{v}_test")[0]) for v in ("os", "0s", "og", "k030", "k100")}


def test_every_object_on_every_scene(sets):
    cfg, d = sets
    pairs = np.stack([d["os"]["meta"]["object_label"], d["os"]["meta"]["scene_label"]], 1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    assert len(uniq) == len(cfg["bam"]["objects"]) * len(cfg["bam"]["scenes"])
    assert (counts == 1).all()
    np.testing.assert_array_equal(d["os"]["labels"], d["os"]["meta"]["object_label"])


def test_variants_share_scenes_and_objects_row_for_row(sets):
    _, d = sets
    obj = d["os"]["masks"]["object"].astype(bool)
    assert obj.any(axis=(1, 2)).all()
    # X_0s: the same scene with the object removed: differs only inside the object mask
    assert not d["0s"]["masks"]["object"].any()
    diff = (d["os"]["images"] != d["0s"]["images"]).any(-1)
    assert not (diff & ~obj).any()
    assert diff.sum() > 0.8 * obj.sum()
    # X_og: the same object on gray: identical inside the mask, gray outside
    inside = obj[..., None].repeat(3, -1)
    np.testing.assert_array_equal(d["og"]["images"][inside], d["os"]["images"][inside])
    bg = d["og"]["images"][~inside].astype(float)
    assert abs(bg.mean() - 127.5) < 2 and bg.std() < 0.02 * 255 * 1.2


def test_commonality_sets_put_the_common_object_in_the_first_k_scenes(sets):
    cfg, d = sets
    cf = cfg["bam"]["objects"].index(cfg["bam"]["common_object"])
    n_scenes = len(cfg["bam"]["scenes"])
    for v, k in (("k030", 0.3), ("k100", 1.0)):
        m = d[v]["meta"]
        np.testing.assert_array_equal(d[v]["labels"], m["scene_label"])
        in_cf = m["scene_label"] < bam.cf_scene_count(k, n_scenes)
        assert (m["object_label"][in_cf] == cf).all()
        assert (m["object_label"][~in_cf] != cf).all()
    assert bam.cf_scene_count(0.3, 10) == 3 and bam.cf_scene_count(0.1, 10) == 1


@pytest.mark.parametrize("rule,lo,hi", [("code", 1 / np.sqrt(3), 1 / np.sqrt(2)), ("paper", 1 / 3, 1 / 2)])
def test_object_size_follows_the_scale_rule(default_cfg, rule, lo, hi):
    cfg = default_cfg
    cfg["bam"].update(n_per_pair={"train": 1, "test": 3}, scale_rule=rule, image_size=128)
    d = collect(build_plan(cfg, "bam_os_test")[0])
    disk = d["meta"]["object_label"] == cfg["bam"]["objects"].index("disk")
    # a disk's side is its diameter: 2 * 0.8 * radius on the [-1, 1] frame
    side = np.array([np.ptp(np.flatnonzero(m.any(0))) + 1 for m in d["masks"]["object"][disk]]) / 128
    assert side.min() > 0.8 / 0.9 * lo - 0.03 and side.max() < 0.8 / 0.9 * hi + 0.03
    # uniform position: whole object inside the image
    m = d["masks"]["object"].astype(bool)
    assert m.any(axis=(1, 2)).all()


def test_compositing_is_seeded(tiny_cfg):
    """Same seed: byte-identical images and masks; another seed: other images (the public BAM
    dataset was not seeded and its numbers did not reproduce)."""
    a = collect(build_plan(tiny_cfg, "bam_os_test")[0])
    b = collect(build_plan(tiny_cfg, "bam_os_test")[0])
    assert a["images"].tobytes() == b["images"].tobytes()
    assert a["masks"]["object"].tobytes() == b["masks"]["object"].tobytes()
    other = dict(tiny_cfg, seed=tiny_cfg["seed"] + 1)
    c = collect(build_plan(other, "bam_os_test")[0])
    assert a["images"].tobytes() != c["images"].tobytes()


def test_benchmark_settings_do_not_change_the_images(tiny_cfg):
    from spurlab.config import section_for_set

    other = {**tiny_cfg, "bam": {**tiny_cfg["bam"], "benchmark": {**tiny_cfg["bam"]["benchmark"], "max_images": 7}}}
    assert section_for_set(other, "bam_os_train") == section_for_set(tiny_cfg, "bam_os_train")
    assert "benchmark" not in section_for_set(tiny_cfg, "bam_os_train")["bam"]


def test_labels_for_a_model_are_its_label_column_or_the_sets_own_kind():
    meta = {"meta/object_label": np.array([0, 1]), "meta/scene_label": np.array([2, 3])}
    objects, scenes = (SimpleNamespace(f=meta, attrs={"label_kind": kind}) for kind in ("object", "scene"))
    assert bam.labels_for(objects, None).tolist() == [0, 1] and bam.labels_for(scenes, None).tolist() == [2, 3]
    assert bam.labels_for(objects, "scene_label").tolist() == [2, 3]  # f_s on the object sets
    assert bam.labels_for(objects, None).dtype == np.int64
