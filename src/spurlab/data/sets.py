"""The registry of image sets a config defines: set name -> build plan + provenance attrs.

Names (see `spurlab.config.set_names`): the planted-cue splits ``train``, ``val``, ``test``,
``counterfactual``, ``cue_only``; BAM sets ``bam_<variant>_<split>``; contamination sets
``contam_<signal|clean>_<split>``; the lightweight-discovery task ``lightweight_<train|test>``.
"""

from __future__ import annotations

import re

from ..config import section_for_set, set_names
from ..errors import SpurlabError
from . import bam, contaminate, synth
from .coco import coco_bam_plan
from .imagesets import config_attrs

_BAM = re.compile(r"^bam_(os|0s|og|k\d{3})_(train|test)$")
_CONTAM = re.compile(r"^contam_(\w+?)_(train|test)$")


def build_plan(cfg: dict, name: str) -> tuple[synth.SetPlan, dict]:
    """The plan that renders set `name` and the attrs its file will carry."""
    if name not in set_names(cfg):
        raise SpurlabError(f"image set '{name}': not defined by this config (defined: {', '.join(set_names(cfg))})")
    section = section_for_set(cfg, name)
    seed = section.get("seed", cfg["seed"])
    ds = section.get("datasets", cfg["datasets"])
    attrs = {"set_name": name, "kind": "packed"}
    attrs.update(config_attrs(section, seed, synth.GENERATOR_VERSION))
    if m := _BAM.match(name):
        variant, split = m.groups()
        b = cfg["bam"]
        if b.get("source", "synthetic") == "coco":  # real objects and scenes (spurlab.data.coco)
            plan, source_attrs = coco_bam_plan(b, seed, variant, split)
        else:
            plan, source_attrs = bam.bam_plan(b, seed, variant, split), {}
        scene_labels = variant.startswith("k")
        attrs.update(
            class_names=list(b["scenes"] if scene_labels else b["objects"]),
            label_kind="scene" if scene_labels else "object",
            object_names=list(b["objects"]),
            scene_class_names=list(b["scenes"]),
            scene_names=list(b["scenes"]),
            cue_names=[],
            image_size=b["image_size"],
        )
        attrs.update(source_attrs)
        return plan, attrs
    if m := _CONTAM.match(name):
        signal, split = m.groups()
        con = cfg["contamination"]
        plan = contaminate.contamination_plan(ds, con, seed, None if signal == "clean" else signal, split)
        attrs.update(
            class_names=list(ds["classes"]),
            label_kind="class",
            scene_names=list(ds["scenes"]),
            cue_names=list(con["signals"]),
            aligned_class=con["aligned_class"],
            image_size=ds["image_size"],
        )
        return plan, attrs
    name = name.removeprefix(
        "lightweight_"
    )  # the second task (docs/methods.md#lightweight-discovery): its own classes, cues, seed
    world = synth.World.from_config(ds)
    if name == "counterfactual":
        plan = synth.counterfactual_plan(world, seed, ds["n_images"]["test"])
    elif name == "cue_only":
        plan = synth.cue_only_plan(world, seed, ds["n_images"]["cue_only"])
    else:
        plan = synth.split_plan(world, seed, name, ds["n_images"][name])
    attrs.update(
        class_names=list(ds["classes"]),
        label_kind="none" if name == "cue_only" else "class",
        scene_names=list(ds["scenes"]),
        cue_names=list(world.cue_names),
        cue_table=ds["cue_table"],
        image_size=ds["image_size"],
    )
    return plan, attrs
