"""The registry of image sets: every name a config defines builds a plan whose attrs say what its
labels are; a name it does not define is refused naming the defined ones."""

import pytest

from spurlab.config import set_names
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError


def test_every_defined_set_has_a_plan_and_its_labels_kind(tiny_cfg):
    ds, b = tiny_cfg["datasets"], tiny_cfg["bam"]
    kinds = {}
    for name in set_names(tiny_cfg):
        plan, attrs = build_plan(tiny_cfg, name)
        assert attrs["set_name"] == name and attrs["kind"] == "packed" and plan.n > 0, name
        kinds[name] = (attrs["label_kind"], attrs["class_names"])
    assert kinds["train"] == ("class", ds["classes"]) and kinds["cue_only"] == ("none", ds["classes"])
    assert build_plan(tiny_cfg, "test")[0].n == ds["n_images"]["test"]
    assert build_plan(tiny_cfg, "counterfactual")[0].n == 2 * ds["n_images"]["test"]  # twins: cue on, off
    assert kinds["bam_os_train"] == ("object", b["objects"]) and kinds["bam_k030_test"] == ("scene", b["scenes"])
    assert kinds["contam_tag_train"][0] == "class" and build_plan(tiny_cfg, "contam_tag_train")[1]["aligned_class"]
    assert kinds["lightweight_train"] == ("class", tiny_cfg["lightweight"]["datasets"]["classes"])


def test_same_config_same_plan_attrs_and_the_seed_is_recorded(tiny_cfg):
    _, a = build_plan(tiny_cfg, "val")
    _, b = build_plan(tiny_cfg, "val")
    assert a == b and a["seed"] == tiny_cfg["seed"]
    _, other = build_plan({**tiny_cfg, "seed": tiny_cfg["seed"] + 1}, "val")
    assert other["config_sha256"] != a["config_sha256"]


def test_an_undefined_set_is_refused_in_one_line(tiny_cfg):
    with pytest.raises(
        SpurlabError, match=r"image set 'bam_k050_test': not defined by this config \(defined: train,"
    ) as e:
        build_plan(tiny_cfg, "bam_k050_test")
    assert "\n" not in str(e.value)
