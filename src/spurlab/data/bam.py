"""BAM compositing on procedural objects and scenes (Yang & Kim 2019; docs/methods.md#bam-compositing), data side.

Every object class appears on every scene class (a balanced grid, `n_per_pair` images each).
One set of latents per split renders every variant, so rows correspond across variants:

- ``os``: object on scene (X_os); `labels` = object label, meta `scene_label` too.
- ``0s``: the same scenes with no object (X_0s); also the "common feature removed" twin of
  every k-series image.
- ``og``: the same objects on uniform gray (X_og).
- ``kNNN``: commonality-k set X_os^k (k = NNN/100): the common object (the paper's "dog") is
  the object of every image of the first round(k * S) scene classes (the first is the paper's
  "bamboo forest", in the CF set for every k), and appears in no other scene class;
  `labels` = scene label.

Object size: the reference code draws the larger relative side uniformly in
[1/sqrt(3), 1/sqrt(2)) of the image side (default, ``scale_rule: code``); the paper's text says
1/3..1/2 (``scale_rule: paper``). Position uniform with the object inside the image. Seeded
(the public dataset was not).
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import SpurlabError
from .scenes import GRAY
from .synth import CHUNK, SetPlan, World, chunk_record, chunk_rng, draw_latents, n_chunks, render

STREAMS = {"train": 21, "test": 23}
VARIANT = re.compile(r"^(os|0s|og|k(\d{3}))$")
# Shapes fit a disk of radius 1 with a bounding box about 0.9 x 2 across, so a relative side
# `f` of the image side is a radius of f / 0.9 in the [-1, 1] frame.
_EXTENT = 0.9
SCALE_RULES = {
    "code": (1 / np.sqrt(3) / _EXTENT, 1 / np.sqrt(2) / _EXTENT),
    "paper": (1 / 3 / _EXTENT, 1 / 2 / _EXTENT),
}


def side_fraction_range(scale_rule: str) -> tuple[float, float]:
    """[lo, hi) of the object's larger side as a fraction of the image side under `scale_rule`:
    what a real cut-out object is resized to (`spurlab.data.coco`), the same sizes as the shapes."""
    lo, hi = SCALE_RULES[scale_rule]
    return lo * _EXTENT, hi * _EXTENT


def bam_world(cfg: dict) -> World:
    return World.plain(
        cfg["image_size"], cfg["objects"], cfg["scenes"], SCALE_RULES[cfg["scale_rule"]], cfg["pixel_noise"]
    )


def cf_scene_count(k: float, n_scenes: int) -> int:
    return max(1, int(round(k * n_scenes)))


def bam_grid(cfg: dict, seed: int, variant: str, split: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(object index, scene index) of every row of variant `variant` of `split`, and whether its
    labels are scene labels (a kNNN set). Shared by the procedural and the COCO sources
    (`spurlab.data.coco`), so both lay out the same balanced grid and commonality sets."""
    m = VARIANT.match(variant)
    if not m:
        raise SpurlabError(f"BAM variant '{variant}': expected os, 0s, og or kNNN (e.g. k050)")
    n_obj, n_scn = len(cfg["objects"]), len(cfg["scenes"])
    per = int(cfg["n_per_pair"][split])
    n = per * n_obj * n_scn
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[split], 2**31 - 1]))
    order = rng.permutation(n)
    obj_all = (order // per) % n_obj
    scn_all = order // (per * n_obj)
    if m.group(2):
        k = int(m.group(2)) / 100
        if not 0 < k <= 1:
            raise SpurlabError(f"BAM variant '{variant}': commonality must be in (0, 1]")
        cf = list(cfg["objects"]).index(cfg["common_object"])
        in_cf = scn_all < cf_scene_count(k, n_scn)
        others = np.array([o for o in range(n_obj) if o != cf])
        # outside the CF scenes the common object never appears: remap it deterministically
        remapped = np.where(obj_all == cf, others[np.arange(n) % len(others)], obj_all)
        obj_all = np.where(in_cf, cf, remapped)
    return obj_all, scn_all, bool(m.group(2))


def bam_plan(cfg: dict, seed: int, variant: str, split: str) -> SetPlan:
    obj_all, scn_all, scene_labels = bam_grid(cfg, seed, variant, split)
    world = bam_world(cfg)
    n = len(obj_all)
    scene_names = np.asarray(world.scenes, dtype=object)

    def chunk(c: int) -> dict:
        start = c * CHUNK
        obj, scn = obj_all[start : start + CHUNK], scn_all[start : start + CHUNK]
        lat = draw_latents(chunk_rng(seed, STREAMS[split], c), len(obj), world)
        present = np.full(len(obj), variant != "0s")
        scenes = np.full(len(obj), GRAY, dtype=object) if variant == "og" else scene_names[scn]
        flags = np.zeros((len(obj), 0), dtype=bool)
        out = render(
            world,
            np.asarray(world.classes, dtype=object)[obj],
            lat,
            flags,
            object_present=present,
            scene_override=scenes,
        )
        labels = scn if scene_labels else obj
        rec = chunk_record(
            world,
            f"bam_{variant}_{split}",
            start=start,
            labels=labels.astype(np.int64),
            lat=lat,
            out=out,
            flags=flags,
            object_present=present,
        )
        rec["meta"]["object_label"] = obj.astype(np.int64)
        rec["meta"]["scene_label"] = scn.astype(np.int64)
        rec["meta"]["scene"] = scn.astype(np.int16) if variant != "og" else np.full(len(obj), -1, np.int16)
        return rec

    return SetPlan(n, n_chunks(n), chunk)


def labels_for(imageset, label_column: str | None) -> np.ndarray:
    """The labels a BAM model of `label_column` (`spurlab.config.bam_model_sets`; None: the set's
    own kind) is scored against on `imageset` (any BAM variant)."""
    col = label_column or ("scene_label" if imageset.attrs.get("label_kind") == "scene" else "object_label")
    return imageset.f[f"meta/{col}"][:].astype(np.int64)
