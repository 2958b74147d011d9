"""Re-rendering chosen rows of a generated set with one part changed (docs/methods.md#interventional-checks-of-explanations).

Every generated image is a function of its latents (`synth.draw_latents`, one RNG stream per
chunk of `synth.CHUNK` rows) and its flags; rendering one row does not depend on its chunk-mates.
So any row can be drawn again with its object left out (`object_present` False), its signal off,
or another scene, and every other pixel stays what it was. The functions here redraw a row's
latents from its chunk's stream, take the row, and render it under the intervention; they also
render the row unchanged, so that the caller can check the re-rendering against the stored set
byte for byte (`check_same`).

- `contamination_twins`: rows of ``contam_<signal>_test`` as stored, without their object, and
  without the signal (the ``contam_clean_test`` row).
- `background_swap`: rows of the planted-cue ``test`` split as stored and on another scene
  (ImageNet-9's mixed-rand: the object, its pose and every non-background cue kept, the scene
  drawn uniformly from the other scenes; a background cue is on exactly when the new scene is
  its scene).
"""

from __future__ import annotations

import zlib
from dataclasses import fields

import numpy as np

from ..errors import SpurlabError
from . import contaminate, synth


def take(lat: synth.Latents, idx: np.ndarray) -> synth.Latents:
    """The latents of rows `idx` of a chunk."""
    return synth.Latents(**{f.name: getattr(lat, f.name)[idx] for f in fields(lat)})


def _by_chunk(rows: np.ndarray):
    """(chunk, positions in `rows`, rows' offsets inside the chunk) per chunk, in order."""
    rows = np.asarray(rows, dtype=np.int64)
    for k in np.unique(rows // synth.CHUNK):
        pos = np.flatnonzero(rows // synth.CHUNK == k)
        yield int(k), pos, rows[pos] - int(k) * synth.CHUNK


def _chunk_size(n: int, k: int) -> int:
    return min(synth.CHUNK, n - k * synth.CHUNK)


def _check_rows(rows: np.ndarray, n: int, what: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n or np.any(np.diff(rows) <= 0)):
        raise SpurlabError(f"{what}: rows must be increasing and in [0, {n})")
    return rows


def contamination_twins(ds: dict, con: dict, seed: int, signal: str, rows) -> dict[str, np.ndarray]:
    """Rows of ``contam_<signal>_test``: `original` (as stored), `no_object` (the same latents with
    `object_present` False; the signal stays), `no_cue` (the signal off: the clean twin), uint8
    (N, H, W, 3); the masks `object` (the full shape) and `cue` (the signal's pixels), bool
    (N, H, W); `labels`."""
    world = contaminate.contamination_world(ds, con)
    if signal not in world.cue_names:
        raise SpurlabError(f"contamination.signals: no signal '{signal}' (has: {', '.join(world.cue_names)})")
    n = int(con["n_images"]["test"])
    rows = _check_rows(rows, n, f"contam_{signal}_test")
    stream = contaminate.STREAMS["test"]
    labels_all = synth.balanced_labels(seed, stream, n, len(world.classes))
    q = world.cue_names.index(signal)
    size = world.image_size
    out = {k: np.zeros((len(rows), size, size, 3), np.uint8) for k in ("original", "no_object", "no_cue")}
    out.update(object=np.zeros((len(rows), size, size), bool), cue=np.zeros((len(rows), size, size), bool))
    for k, pos, offset in _by_chunk(rows):
        lat = take(synth.draw_latents(synth.chunk_rng(seed, stream, k), _chunk_size(n, k), world), offset)
        shapes = np.asarray(world.classes, dtype=object)[labels_all[rows[pos]]]
        on = np.zeros((len(pos), len(world.cue_names)), dtype=bool)
        on[:, q] = True
        present, absent = np.ones(len(pos), bool), np.zeros(len(pos), bool)
        full = synth.render(world, shapes, lat, on, present)
        out["original"][pos] = full["images"]
        out["object"][pos], out["cue"][pos] = full["object"], full["cue_masks"][q]
        out["no_object"][pos] = synth.render(world, shapes, lat, on, absent)["images"]
        out["no_cue"][pos] = synth.render(world, shapes, lat, np.zeros_like(on), present)["images"]
    out["labels"] = labels_all[rows]
    return out


def swap_scenes(world: synth.World, scenes: np.ndarray, seed: int, rows: np.ndarray) -> np.ndarray:
    """Each row's new scene: uniform over the world's scenes other than its own, drawn from a
    stream keyed by (seed, row), so a row's draw does not depend on which other rows are swapped."""
    names = np.asarray(world.scenes, dtype=object)
    out = np.empty(len(rows), dtype=object)
    for i, (r, own) in enumerate(zip(rows, scenes)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"background-swap"), int(r)]))
        others = names[names != own]
        out[i] = others[int(rng.integers(len(others)))]
    return out


def background_swap(ds: dict, seed: int, swap_seed: int, rows) -> dict[str, np.ndarray]:
    """Rows of the ``test`` split: `original` (as stored) and `swapped` (another scene, see the
    module docstring), uint8 (N, H, W, 3); `scene` and `swapped_scene` (names), `labels`,
    `own_background_cue` (the row shows its own class's background cue), `object` masks."""
    world = synth.World.from_config(ds)
    n = int(ds["n_images"]["test"])
    rows = _check_rows(rows, n, "test")
    stream = synth.SPLIT_CODES["test"]
    labels_all = synth.balanced_labels(seed, stream, n, len(world.classes))
    bg = world.background_cues
    size = world.image_size
    out = {k: np.zeros((len(rows), size, size, 3), np.uint8) for k in ("original", "swapped")}
    out["object"] = np.zeros((len(rows), size, size), bool)
    out["scene"], out["swapped_scene"] = np.empty(len(rows), object), np.empty(len(rows), object)
    out["own_background_cue"] = np.zeros(len(rows), bool)
    for k, pos, offset in _by_chunk(rows):
        full_lat = synth.draw_latents(synth.chunk_rng(seed, stream, k), _chunk_size(n, k), world)
        labels_chunk = labels_all[k * synth.CHUNK : k * synth.CHUNK + _chunk_size(n, k)]
        flags = synth.draw_cue_flags(world, labels_chunk, full_lat)[offset]
        lat, labels = take(full_lat, offset), labels_chunk[offset]
        shapes = np.asarray(world.classes, dtype=object)[labels]
        present = np.ones(len(pos), bool)
        orig = synth.render(world, shapes, lat, flags, present)
        new_scene = swap_scenes(world, orig["scene"], swap_seed, rows[pos])
        off = flags.copy()
        off[:, bg] = False
        out["swapped"][pos] = synth.render(world, shapes, lat, off, present, scene_override=new_scene)["images"]
        out["original"][pos], out["object"][pos] = orig["images"], orig["object"]
        out["scene"][pos], out["swapped_scene"][pos] = orig["scene"], new_scene
        own = np.array([world.class_cue.get(int(c), -1) for c in labels])
        out["own_background_cue"][pos] = np.isin(own, bg) & flags[np.arange(len(pos)), np.maximum(own, 0)]
    out["labels"] = labels_all[rows]
    return out


def check_same(rendered: np.ndarray, stored: np.ndarray, where: str) -> None:
    """The re-rendered rows must be the stored rows byte for byte (same config, seed, generator)."""
    if rendered.shape != stored.shape or not np.array_equal(rendered, stored):
        raise SpurlabError(f"{where}: re-rendered rows differ from the stored images (the set was made from "
                           "another config, seed or generator version); rebuild it")  # fmt: skip
