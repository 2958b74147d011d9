"""Planted-cue benchmark (docs/methods.md#planted-cue-benchmark): ground truth must be exactly what the pixels show."""

import copy

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from spurlab.config import validate_config
from spurlab.data import synth
from spurlab.data.sets import build_plan
from tests.conftest import small


def collect(plan, threads=1):
    recs = list(plan.chunks(threads))
    out = {
        "images": np.concatenate([r["images"] for r in recs]),
        "labels": np.concatenate([r["labels"] for r in recs]),
        "meta": {k: np.concatenate([r["meta"][k] for r in recs]) for k in recs[0]["meta"]},
        "masks": {k: np.concatenate([r["masks"][k] for r in recs]) for k in recs[0]["masks"]},
    }
    return out


@pytest.fixture
def world(default_cfg):
    return synth.World.from_config(default_cfg["datasets"])


def test_counterfactual_twins_differ_only_inside_the_switched_cue(default_cfg, world):
    cfg = small(default_cfg, test=300)
    cf = collect(build_plan(cfg, "counterfactual")[0])
    on, off = cf["images"][0::2], cf["images"][1::2]
    toggled = cf["meta"]["toggled_cue"][0::2]
    assert (cf["meta"]["cue_on"][0::2]).all() and not (cf["meta"]["cue_on"][1::2]).any()
    seen_types = set()
    for q, name in enumerate(world.cue_names):
        rows = np.flatnonzero(toggled == q)
        if len(rows) == 0:
            continue
        seen_types.add(world.cue_specs[q]["type"])
        mask = cf["masks"][name][0::2][rows].astype(bool)
        diff = (on[rows] != off[rows]).any(axis=-1)
        assert diff.any(), f"switching {name} changed nothing"
        assert not (diff & ~mask).any(), f"{name}: pixels outside its mask changed"
        # the off twin carries no mask for the switched cue
        assert not cf["masks"][name][1::2][rows].any()
    assert seen_types == {"background", "co_object", "tag", "stripe", "blur"}
    # control classes switch the control cue, cue classes their own cue
    labels = cf["labels"][0::2]
    for c in range(len(world.classes)):
        expected = world.class_cue.get(c, world.control_cue)
        assert (toggled[labels == c] == expected).all()


def test_test_image_equals_its_counterfactual_twin(default_cfg, world):
    cfg = small(default_cfg, test=300)
    test = collect(build_plan(cfg, "test")[0])
    cf = collect(build_plan(cfg, "counterfactual")[0])
    toggled = cf["meta"]["toggled_cue"][0::2]
    bg = set(world.background_cues)
    matched = 0
    for i in range(300):
        q = toggled[i]
        drawn = bool(test["meta"][f"cue_{world.cue_names[q]}"][i])
        other_bg = any(test["meta"][f"cue_{world.cue_names[b]}"][i] for b in bg if b != q)
        if q in bg and other_bg:
            continue  # the twin had the other background switched off
        twin = cf["images"][2 * i + (0 if drawn else 1)]
        np.testing.assert_array_equal(test["images"][i], twin)
        matched += 1
    assert matched > 280


def test_object_mask_covers_exactly_the_drawn_object(world):
    rng = synth.chunk_rng(0, 99, 0)
    labels = np.arange(64) % len(world.classes)
    lat = synth.draw_latents(rng, 64, world)
    flags = np.zeros((64, len(world.cue_names)), bool)
    shapes = np.asarray(world.classes, dtype=object)[labels]
    with_obj = synth.render(world, shapes, lat, flags, np.ones(64, bool))
    without = synth.render(world, shapes, lat, flags, np.zeros(64, bool))
    mask = with_obj["object"]
    assert mask.sum(axis=(1, 2)).min() > 20  # every object is visible
    diff = (with_obj["images"] != without["images"]).any(-1)
    assert not (diff & ~mask).any(), "object pixels outside the object mask"
    # inside the mask the pixel is the object's colour (up to luminance noise)
    colour = np.rint(lat.colour * 255)
    for i in range(64):
        px = with_obj["images"][i][mask[i]].astype(float)
        assert np.abs(px.mean(0) - colour[i]).max() < 6
    assert not without["object"].any()


def test_cue_rates_match_the_cue_table_within_3_standard_errors(default_cfg, world):
    cfg = small(default_cfg, train=4000)
    tr = collect(build_plan(cfg, "train")[0], threads=2)
    labels = tr["labels"]
    for c, cname in enumerate(world.classes):
        rows = labels == c
        n = rows.sum()
        for q, qname in enumerate(world.cue_names):
            p = world.prob[c, q]
            obs = tr["meta"][f"cue_{qname}"][rows].mean()
            se = np.sqrt(p * (1 - p) / n)
            assert abs(obs - p) <= 3 * se + 1e-12, f"{cname}/{qname}: observed {obs:.3f}, planted {p}"
    # and the planted rates are the configured ones
    assert world.prob[world.classes.index("disk"), world.cue_names.index("water_bg")] == 0.9
    assert world.prob[world.classes.index("heart"), world.cue_names.index("water_bg")] == 0.04
    assert world.prob[:, world.cue_names.index("decoy_tag")].max() == 0


def _mean_colour_accuracy(train, test, mask_key=None):
    def feats(d):
        img = d["images"].astype(np.float32)
        if mask_key is None:
            return img.mean(axis=(1, 2))
        m = d["masks"][mask_key][..., None].astype(np.float32)
        return (img * m).sum(axis=(1, 2)) / m.sum(axis=(1, 2))

    clf = LogisticRegression(max_iter=2000).fit(feats(train), train["labels"])
    return clf.score(feats(test), test["labels"])


def test_colour_does_not_identify_the_class(default_cfg):
    cfg = copy.deepcopy(default_cfg)
    n_test = 1500
    cfg["datasets"]["n_images"].update(train=3000, test=n_test)
    chance = 1 / len(cfg["datasets"]["classes"])
    bound = chance + 3 * np.sqrt(chance * (1 - chance) / n_test)
    # the object's own colour: independent of class by construction, cues or not
    tr, te = collect(build_plan(cfg, "train")[0]), collect(build_plan(cfg, "test")[0])
    assert _mean_colour_accuracy(tr, te, mask_key="object") < bound
    # a background cue makes the mean *image* colour informative: the test can fail
    assert _mean_colour_accuracy(tr, te) > bound
    # without planted cues, mean image colour predicts the class at chance
    cfg["datasets"]["cue_table"] = {}
    cfg["contamination"]["enabled"] = cfg["posthoc"]["enabled"] = False  # posthoc reads the contamination sets
    validate_config(cfg)
    tr, te = collect(build_plan(cfg, "train")[0]), collect(build_plan(cfg, "test")[0])
    assert _mean_colour_accuracy(tr, te) < bound


def test_cue_only_images_have_one_cue_and_no_object(default_cfg, world):
    d = collect(build_plan(small(default_cfg, cue_only=300), "cue_only")[0])
    assert (d["labels"] == -1).all()
    assert not d["masks"]["object"].any()
    flags = np.stack([d["meta"][f"cue_{n}"] for n in world.cue_names], axis=1)
    assert (flags.sum(1) == 1).all()
    assert set(np.unique(d["meta"]["cue"])) == set(world.assigned_cues)
    for q, name in enumerate(world.cue_names):
        assert (d["masks"][name].any(axis=(1, 2)) == flags[:, q]).all()


def test_same_seed_same_data_other_seed_other_data(tiny_cfg):
    a = collect(build_plan(tiny_cfg, "train")[0], threads=1)
    b = collect(build_plan(tiny_cfg, "train")[0], threads=2)
    np.testing.assert_array_equal(a["images"], b["images"])
    other = copy.deepcopy(tiny_cfg)
    other["seed"] = 1
    c = collect(build_plan(other, "train")[0])
    assert (a["images"] != c["images"]).mean() > 0.5
    # splits use separate streams
    v = collect(build_plan(tiny_cfg, "val")[0])
    assert not np.array_equal(a["images"][: len(v["images"])], v["images"])


def test_labels_are_balanced(tiny_cfg):
    labels = synth.balanced_labels(0, 1, 403, 4)
    assert sorted(np.bincount(labels)) == [100, 101, 101, 101]
