"""Spurious contamination functions (Adebayo et al. 2022; docs/methods.md#spurious-contamination).

``SCF(x, y, c)`` applies signal c to every training image of the spurious-aligned class j. The
signals are the cue renderers of `spurlab.data.cues` (`tag`, `stripe`, `blur`), so contamination
and the planted-cue benchmark draw identical cues. The paper gives no sizes; they are config
(`contamination.signals`) and documented in config/README.md.

Sets built here (same classes, scenes and object settings as `datasets`, no planted cues):

- ``contam_clean_{train,test}``: clean images.
- ``contam_<signal>_train``: the clean train images, with the signal on every image of the
  aligned class (and only there): the spurious model's training set.
- ``contam_<signal>_test``: the clean test images with the signal on *every* image, row for row
  the twin of ``contam_clean_test``: spurious inputs for the spurious score and FAM.
"""

from __future__ import annotations

import numpy as np

from ..errors import SpurlabError
from .cues import N_PARAMS, ObjectFrame, apply_cue
from .synth import CHUNK, SetPlan, World, balanced_labels, chunk_record, chunk_rng, draw_latents, n_chunks, render

STREAMS = {"train": 11, "test": 13}


def scf(images: np.ndarray, object_mask: np.ndarray, signal: dict, rng: np.random.Generator):
    """Apply one signal to uint8 images (B, H, W, 3) of any origin; return (images, signal mask).

    `object_mask` (B, H, W) marks the foreground: blur spares it, co-objects sit beside it.
    """
    if signal["type"] not in ("tag", "stripe", "blur", "co_object"):
        raise SpurlabError(f"signal type '{signal['type']}' cannot be applied to finished images")
    canvas = images.astype(np.float32) / 255.0
    frame = ObjectFrame.from_masks(object_mask.astype(bool))
    u = rng.random((len(images), N_PARAMS), dtype=np.float32)
    mask = apply_cue(canvas, signal, u, frame, np.ones(len(images), dtype=bool))
    return np.rint(np.clip(canvas, 0, 1) * 255).astype(np.uint8), mask


def contamination_world(ds: dict, cfg: dict) -> World:
    w = World.plain(
        ds["image_size"],
        ds["classes"],
        scenes=ds["scenes"],
        scale=ds["object"]["scale"],
        pixel_noise=ds["pixel_noise"],
        cues=cfg["signals"],
    )
    if cfg["aligned_class"] not in w.classes:
        raise SpurlabError(f"contamination.aligned_class: '{cfg['aligned_class']}' is not in datasets.classes")
    return w


def contamination_plan(ds: dict, cfg: dict, seed: int, signal: str | None, split: str) -> SetPlan:
    world = contamination_world(ds, cfg)
    if signal is not None and signal not in world.cue_names:
        raise SpurlabError(f"contamination.signals: no signal '{signal}' (has: {', '.join(world.cue_names)})")
    n = int(cfg["n_images"][split])
    stream = STREAMS[split]
    labels_all = balanced_labels(seed, stream, n, len(world.classes))
    aligned = world.classes.index(cfg["aligned_class"])
    shapes_all = np.asarray(world.classes, dtype=object)[labels_all]
    name = f"contam_{signal or 'clean'}_{split}"

    def chunk(k: int) -> dict:
        start = k * CHUNK
        labels = labels_all[start : start + CHUNK]
        lat = draw_latents(chunk_rng(seed, stream, k), len(labels), world)
        flags = np.zeros((len(labels), len(world.cue_names)), dtype=bool)
        if signal is not None:
            q = world.cue_names.index(signal)
            flags[:, q] = (labels == aligned) if split == "train" else True
        present = np.ones(len(labels), dtype=bool)
        out = render(world, shapes_all[start : start + CHUNK], lat, flags, present)
        return chunk_record(
            world, name, start=start, labels=labels, lat=lat, out=out, flags=flags, object_present=present
        )

    return SetPlan(n, n_chunks(n), chunk)


def check_twins(clean, other) -> None:
    """`other` must be the contamination set `clean` row for row with a signal added (same labels,
    same row numbers): the sets `contam_clean_test` and `contam_<signal>_test` are."""
    same = len(clean) == len(other) and np.array_equal(clean.labels, other.labels)
    same = same and [i.split(b"-")[-1] for i in clean.ids] == [i.split(b"-")[-1] for i in other.ids]
    if not same:
        raise SpurlabError(f"{other.path}: rows are not the twins of {clean.path} (labels or row ids differ)")
