"""Planted-cue benchmark generator (docs/methods.md#planted-cue-benchmark): images whose spurious cues are known by construction.

Design:
- `World` resolves the `datasets` config once: classes, scenes, cues and the probability
  ``P[c, q]`` that an image of class c shows cue q (``p_in_class`` for the classes a cue is
  assigned to, ``p_elsewhere`` for every other class).
- `draw_latents` draws *every* random quantity of a chunk of images up front, in a fixed order,
  whether or not it will be used. Cue flags are a deterministic function of the latents, so a
  counterfactual twin (one cue switched) shares every other pixel with its original.
- `render` turns latents + flags into uint8 images, the object mask and one mask per cue.
- Randomness is keyed by ``(seed, split, chunk)``: output does not depend on how many processes
  generate it, and the `counterfactual` split re-draws the `test` split's latents exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import SpurlabError
from . import cues as cue_lib
from . import scenes as scene_lib
from .shapes import PALETTE, shape_masks

GENERATOR_VERSION = "synth-1"
CHUNK = 256  # images per RNG stream; part of the generator's definition, not a tuning knob
SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "cue_only": 5}


@dataclass
class World:
    """The resolved planted-cue world: who owns which cue with which probability."""

    image_size: int
    classes: list[str]
    scenes: list[str]
    cue_names: list[str]
    cue_specs: list[dict]
    prob: np.ndarray  # (C, Q) P(cue q present | class c)
    class_cue: dict[int, int]  # class index -> its cue index (classes without one are controls)
    control_cue: int | None
    neutral_scenes: list[str]
    scale: tuple[float, float]
    pixel_noise: float
    scene_contrast: float = 1.0
    rotation: float = 180.0  # max |angle| of the object in degrees
    n_images: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, ds: dict) -> World:
        """Resolve a validated `datasets` section (see `spurlab.config.check_semantics`)."""
        classes, cue_names = list(ds["classes"]), list(ds["cues"])
        specs = [dict(ds["cues"][n]) for n in cue_names]
        prob = np.zeros((len(classes), len(cue_names)), dtype=np.float64)
        class_cue: dict[int, int] = {}
        for cname, row in ds["cue_table"].items():
            q = cue_names.index(row["cue"])
            prob[:, q] = row["p_elsewhere"]
            class_cue[classes.index(cname)] = q
        for c, q in class_cue.items():
            prob[c, q] = ds["cue_table"][classes[c]]["p_in_class"]
        claimed = {s["scene"] for s in specs if s["type"] == "background"}
        control = ds.get("counterfactual_control_cue")
        return cls(
            image_size=int(ds["image_size"]),
            classes=classes,
            scenes=list(ds["scenes"]),
            cue_names=cue_names,
            cue_specs=specs,
            prob=prob,
            class_cue=class_cue,
            control_cue=None if control is None else cue_names.index(control),
            neutral_scenes=[s for s in ds["scenes"] if s not in claimed],
            scale=tuple(ds["object"]["scale"]),
            pixel_noise=float(ds["pixel_noise"]),
            scene_contrast=float(ds["scene_contrast"]),
            rotation=float(ds["object"]["rotation"]),
            n_images=dict(ds["n_images"]),
        )

    @classmethod
    def plain(cls, image_size, classes, scenes, scale, pixel_noise, cues: dict | None = None) -> World:
        """A world whose cues (if any) are assigned to no class: BAM and contamination set
        their flags explicitly."""
        cues = cues or {}
        return cls(
            image_size=int(image_size),
            classes=list(classes),
            scenes=list(scenes),
            cue_names=list(cues),
            cue_specs=[dict(v) for v in cues.values()],
            prob=np.zeros((len(classes), len(cues))),
            class_cue={},
            control_cue=None,
            neutral_scenes=list(scenes),
            scale=tuple(scale),
            pixel_noise=float(pixel_noise),
        )

    @property
    def background_cues(self) -> list[int]:
        return [q for q, s in enumerate(self.cue_specs) if s["type"] == "background"]

    @property
    def assigned_cues(self) -> list[int]:
        return sorted(set(self.class_cue.values()))

    def toggled_cue(self, labels: np.ndarray) -> np.ndarray:
        """Cue switched in each counterfactual pair: the class's own cue, else the control cue."""
        fallback = -1 if self.control_cue is None else self.control_cue
        return np.array([self.class_cue.get(int(c), fallback) for c in labels], dtype=np.int64)


@dataclass
class Latents:
    """Every random quantity of a chunk, drawn in a fixed order (see module docstring)."""

    colour: np.ndarray  # (B, 3) float32
    colour_index: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    neutral_scene: np.ndarray  # index into World.neutral_scenes
    scene_p: np.ndarray  # (B, 8)
    scene_noise: np.ndarray  # (B, 16, 16)
    bg_u: np.ndarray  # (B,) selects at most one background cue
    cue_u: np.ndarray  # (B, Q) presence uniforms
    cue_params: np.ndarray  # (B, Q, N_PARAMS)
    pick_u: np.ndarray  # (B,) which cue a cue-only image shows
    pixel_noise: np.ndarray  # (B, H, W) float32, luminance noise added to all channels


def chunk_rng(seed: int, stream: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(chunk)]))


def draw_latents(rng: np.random.Generator, n: int, world: World, scale: tuple[float, float] | None = None) -> Latents:
    size, q = world.image_size, len(world.cue_names)
    lo, hi = scale or world.scale
    colour_index = rng.integers(0, len(PALETTE), n)
    colour = np.clip(PALETTE[colour_index] + rng.uniform(-0.06, 0.06, (n, 3)).astype(np.float32), 0, 1)
    s = rng.uniform(lo, hi, n).astype(np.float32)
    angle = (np.deg2rad(world.rotation) * rng.uniform(-1, 1, n)).astype(np.float32)
    cx = ((rng.random(n) * 2 - 1) * (1 - s)).astype(np.float32)
    cy = ((rng.random(n) * 2 - 1) * (1 - s)).astype(np.float32)
    return Latents(
        colour=colour.astype(np.float32),
        colour_index=colour_index,
        scale=s,
        angle=angle,
        cx=cx,
        cy=cy,
        neutral_scene=rng.integers(0, len(world.neutral_scenes), n),
        scene_p=rng.random((n, scene_lib.N_PARAMS), dtype=np.float32),
        scene_noise=rng.random((n, scene_lib.NOISE_RES, scene_lib.NOISE_RES), dtype=np.float32),
        bg_u=rng.random(n),
        cue_u=rng.random((n, q)),
        cue_params=rng.random((n, q, cue_lib.N_PARAMS), dtype=np.float32),
        pick_u=rng.random(n),
        pixel_noise=rng.standard_normal((n, size, size), dtype=np.float32) * np.float32(world.pixel_noise),
    )


def draw_cue_flags(world: World, labels: np.ndarray, lat: Latents) -> np.ndarray:
    """Which cues each image shows: (B, Q) bool, exactly at the rates of the cue table.

    Background cues are one categorical draw (an image has one scene), the others independent.
    """
    p = world.prob[labels]  # (B, Q)
    flags = lat.cue_u < p
    bg = world.background_cues
    if bg:
        flags[:, bg] = False
        cum = np.cumsum(p[:, bg], axis=1)
        chosen = (lat.bg_u[:, None] < cum).argmax(axis=1)
        any_bg = lat.bg_u < cum[:, -1]
        flags[np.flatnonzero(any_bg), np.asarray(bg)[chosen[any_bg]]] = True
    return flags


def render(
    world: World,
    shapes: np.ndarray,
    lat: Latents,
    flags: np.ndarray,
    object_present: np.ndarray,
    scene_override: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Render a chunk. Returns uint8 `images` (B,H,W,3), bool `object` mask and `cue_masks` (Q,B,H,W).

    `scene_override` (B,) names each row's scene directly (BAM's scene classes, its gray
    background), bypassing neutral scenes and background cues.
    """
    n, size = len(shapes), world.image_size
    scene = np.asarray(world.neutral_scenes, dtype=object)[lat.neutral_scene]
    for q in world.background_cues:
        scene = np.where(flags[:, q], world.cue_specs[q]["scene"], scene)
    if scene_override is not None:
        scene = np.asarray(scene_override, dtype=object)
    canvas = scene_lib.render_scenes(scene, lat.scene_p, lat.scene_noise, size)
    if world.scene_contrast != 1.0:
        # blend each scene toward its own mean colour: weaker texture edges, same hue
        mean = canvas.mean(axis=(1, 2), keepdims=True)
        canvas -= mean
        canvas *= np.float32(world.scene_contrast)
        canvas += mean
    obj = (
        shape_masks(shapes, lat.cx, cy=lat.cy, scale=lat.scale, angle=lat.angle, size=size)
        & object_present[:, None, None]
    )
    np.copyto(canvas, lat.colour[:, None, None, :], where=obj[..., None])
    frame = cue_lib.ObjectFrame(obj, lat.cx, lat.cy, lat.scale)
    cue_masks = np.zeros((len(world.cue_names), n, size, size), dtype=bool)
    order = sorted(range(len(world.cue_names)), key=lambda q: cue_lib.RENDER_ORDER[world.cue_specs[q]["type"]])
    for q in order:
        cue_masks[q] = cue_lib.apply_cue(canvas, world.cue_specs[q], lat.cue_params[:, q], frame, flags[:, q])
    # to 8 bits: clip(x + noise, 0, 1) * 255, rounded half up (truncation of v + 0.5 >= 0)
    canvas *= 255.0
    canvas += (lat.pixel_noise * 255.0 + 0.5)[..., None]
    np.clip(canvas, 0.5, 255.5, out=canvas)
    images = canvas.astype(np.uint8)
    return {"images": images, "object": obj, "cue_masks": cue_masks, "scene": scene}


def balanced_labels(seed: int, stream: int, n: int, n_classes: int) -> np.ndarray:
    """Class labels with counts as equal as possible, in a seeded random order."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), 2**31 - 1]))
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Chunk iterators for the splits of docs/methods.md#planted-cue-benchmark. Each yields dicts of per-row arrays ready for
# `imagesets.ImageSetWriter.append`.
# ----------------------------------------------------------------------------------------------


def chunk_record(world: World, prefix: str, start: int, labels, lat, out, flags, object_present) -> dict:
    n = len(labels)
    meta = {
        "scene": np.array([world.scenes.index(s) if s in world.scenes else -1 for s in out["scene"]], np.int16),
        "object_present": object_present.astype(bool),
        "colour": lat.colour_index.astype(np.int16),
        "scale": lat.scale,
        "angle": lat.angle,
        "cx": lat.cx,
        "cy": lat.cy,
    }
    for q, name in enumerate(world.cue_names):
        meta[f"cue_{name}"] = flags[:, q].copy()
    masks = {"object": out["object"]}
    for q, name in enumerate(world.cue_names):
        masks[name] = out["cue_masks"][q]
    ids = np.array([f"{prefix}-{start + i:07d}".encode() for i in range(n)])
    return {"images": out["images"], "labels": labels, "ids": ids, "meta": meta, "masks": masks}


@dataclass
class SetPlan:
    """How to build one image set: `n` rows made by `chunk(k)` for k in range(n_chunks).

    Chunks are independent (each has its own RNG stream), so they may be rendered in any order
    or in parallel; `chunks()` yields them in order.
    """

    n: int
    n_chunks: int
    chunk: Callable[[int], dict]

    def chunks(self, workers: int = 1) -> Iterator[dict]:
        if workers <= 1:
            yield from (self.chunk(k) for k in range(self.n_chunks))
            return
        # numpy releases the GIL in its array kernels; a bounded window caps memory
        with ThreadPoolExecutor(workers) as pool:
            pending: deque = deque()
            for k in range(self.n_chunks):
                pending.append(pool.submit(self.chunk, k))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def n_chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


def split_plan(world: World, seed: int, split: str, n: int) -> SetPlan:
    """train / val / test: every image has its class object; cues at the cue table's rates."""
    stream = SPLIT_CODES[split]
    labels_all = balanced_labels(seed, stream, n, len(world.classes))
    shapes_all = np.asarray(world.classes, dtype=object)[labels_all]

    def chunk(k: int) -> dict:
        start = k * CHUNK
        labels = labels_all[start : start + CHUNK]
        lat = draw_latents(chunk_rng(seed, stream, k), len(labels), world)
        flags = draw_cue_flags(world, labels, lat)
        present = np.ones(len(labels), dtype=bool)
        out = render(world, shapes_all[start : start + CHUNK], lat, flags, present)
        return chunk_record(
            world, split, start=start, labels=labels, lat=lat, out=out, flags=flags, object_present=present
        )

    return SetPlan(n, n_chunks(n), chunk)


def counterfactual_plan(world: World, seed: int, n_test: int) -> SetPlan:
    """Each test image twice from its own latents: rows 2i (cue on) and 2i+1 (cue off).

    The switched cue is the class's own cue; for control classes it is the configured control
    cue, a cue no class is trained with, so a control gap measures the disruption of pasting a
    cue rather than learned reliance. Other cues keep their test-split draws, except other
    background cues, which are turned off (an image has one scene). Where no cue is switched
    (a control class and no control cue) the twins are identical.
    """
    stream = SPLIT_CODES["test"]
    labels_all = balanced_labels(seed, stream, n_test, len(world.classes))
    shapes_all = np.asarray(world.classes, dtype=object)[labels_all]
    bg = world.background_cues

    def chunk(k: int) -> dict:
        start = k * CHUNK
        labels = labels_all[start : start + CHUNK]
        lat = draw_latents(chunk_rng(seed, stream, k), len(labels), world)
        flags = draw_cue_flags(world, labels, lat)
        toggled = world.toggled_cue(labels)
        rows = np.arange(len(labels))
        has = toggled >= 0
        if bg:
            flags[np.ix_(has & np.isin(toggled, bg), bg)] = False
        records = []
        for on in (True, False):
            f = flags.copy()
            f[rows[has], toggled[has]] = on
            present = np.ones(len(labels), dtype=bool)
            out = render(world, shapes_all[start : start + CHUNK], lat, f, present)
            rec = chunk_record(
                world, "counterfactual", start=0, labels=labels, lat=lat, out=out, flags=f, object_present=present
            )
            rec["meta"]["pair"] = (start + rows).astype(np.int64)
            rec["meta"]["cue_on"] = np.full(len(labels), on)
            rec["meta"]["toggled_cue"] = toggled.astype(np.int16)
            records.append(rec)
        return _interleave(records[0], records[1], start)

    return SetPlan(2 * n_test, n_chunks(n_test), chunk)


def _interleave(a: dict, b: dict, start: int) -> dict:
    def mix(x, y):
        out = np.empty((2 * len(x),) + x.shape[1:], dtype=x.dtype)
        out[0::2], out[1::2] = x, y
        return out

    n = len(a["labels"])
    rec = {
        "images": mix(a["images"], b["images"]),
        "labels": mix(a["labels"], b["labels"]),
        "meta": {k: mix(a["meta"][k], b["meta"][k]) for k in a["meta"]},
        "masks": {k: mix(a["masks"][k], b["masks"][k]) for k in a["masks"]},
    }
    rec["ids"] = np.array(
        [f"counterfactual-{start + i // 2:07d}-{'on' if i % 2 == 0 else 'off'}".encode() for i in range(2 * n)]
    )
    return rec


def cue_only_plan(world: World, seed: int, n: int) -> SetPlan:
    """Images with exactly one assigned cue and no class object (label -1): Spurious ImageNet's
    negatives for the spurious score (docs/methods.md#spurious-score). Cues are drawn uniformly among assigned cues."""
    stream = SPLIT_CODES["cue_only"]
    assigned = np.asarray(world.assigned_cues, dtype=np.int64)
    if len(assigned) == 0:
        raise SpurlabError("datasets.cue_table: no class has a cue, so the cue_only split is empty")

    def chunk(k: int) -> dict:
        start = k * CHUNK
        m = min(CHUNK, n - start)
        lat = draw_latents(chunk_rng(seed, stream, k), m, world)
        pick = assigned[np.minimum((lat.pick_u * len(assigned)).astype(int), len(assigned) - 1)]
        flags = np.zeros((m, len(world.cue_names)), dtype=bool)
        flags[np.arange(m), pick] = True
        labels = np.full(m, -1, dtype=np.int64)
        present = np.zeros(m, dtype=bool)
        shapes = np.asarray(world.classes, dtype=object)[np.zeros(m, dtype=int)]  # drawn, then masked out
        out = render(world, shapes, lat, flags, present)
        rec = chunk_record(
            world, "cue_only", start=start, labels=labels, lat=lat, out=out, flags=flags, object_present=present
        )
        rec["meta"]["cue"] = pick.astype(np.int16)
        return rec

    return SetPlan(n, n_chunks(n), chunk)
