"""The torch-free half of D(i, j) (spurlab.discover.subsets, whose docstring has the file layout):
the subsets file's reader (`SalientSubsets`), the per-pair map statistics (`pair_region_stats`,
`STAT_COLUMNS`), the subset size, and the consolidated masks of eq. 2 (stage `salient_masks`, its
writer and reader `ConsolidatedMasks`). The stages that only read subsets (annotation tasks,
annotations, masks, the summaries, the report) import this module and load no torch
(docs/performance.md#per-job-fixed-cost).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import SpurlabError
from ..io import atomic_path, create_h5, open_h5, sha256_file
from ..io.tables import read_table

FORMAT = "spurlab.salient_subsets"
# pair_region_stats' columns: the first four read by the automatic annotator, the rest by the planted truth
STAT_COLUMNS = ("mass_object", "area_object", "hot_object", "hot_object_near", "cue_share", "mass_cue", "area_cue",
                "hot_cue", "mass_rest", "area_rest", "hot_rest", "hot_object_cued")  # fmt: skip


def subset_size(n_class: int, fraction: float, min_images: int, max_images: int) -> int:
    """How many of a class's `n_class` images go into each of its D(i, j)."""
    return int(min(n_class, max(min_images, min(max_images, round(fraction * n_class)))))


HOT = 0.5  # a NAM's "hot" region: where it reaches half its maximum (what a heatmap shows in red)


def region_masses(nams: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Per region, means over images of (NAM mass fraction on it, its area fraction, the fraction
    of the NAM's hot region (>= HOT) on it).

    `nams` (n, H, W) >= 0; each region (n, H, W) in {0, 1}. An all-zero NAM counts as 0 everywhere.
    """
    n = len(nams)
    flat = nams.reshape(n, -1)
    total = flat.sum(1)
    hot = flat >= HOT
    n_hot = hot.sum(1)
    out = {}
    for name, m in regions.items():
        m = m.reshape(n, -1).astype(bool)
        on = (flat * m).sum(1)
        frac = np.divide(on, total, out=np.zeros_like(on, dtype=np.float64), where=total > 0)
        hot_frac = np.divide((hot & m).sum(1), n_hot, out=np.zeros(n), where=n_hot > 0)
        out[name] = (float(frac.mean()), float(m.mean(1).mean()), float(hot_frac.mean()))
    return out


def object_margin_px(image_size: int, map_size: int, margin_cells: float) -> int:
    """`margin_cells` cells of a (map_size x map_size) feature map, in pixels of the image it is
    upsampled to (rounded)."""
    return int(round(margin_cells * image_size / map_size))


def region_masks(obj: np.ndarray, cue: np.ndarray, margin_px: int = 0) -> dict[str, np.ndarray]:
    """The regions `pair_region_stats` reads from bool object and cue masks (n, H, W): object, cue,
    rest (neither) and `object_near`, the object grown by `margin_px` pixels in every direction
    (a square neighbourhood: a feature-map cell is a square)."""
    from scipy.ndimage import binary_dilation

    obj, cue = np.asarray(obj, bool), np.asarray(cue, bool)
    near = binary_dilation(obj, np.ones((1, 2 * margin_px + 1, 2 * margin_px + 1), bool)) if margin_px > 0 else obj
    return {"object": obj, "cue": cue, "rest": ~(obj | cue), "object_near": near}


def imageset_region_masks(
    imageset, rows: np.ndarray, cue_names: list[str], margin_px: int = 0
) -> dict[str, np.ndarray]:
    """`region_masks` of an image set's `rows` (any order), from its object mask and the union of
    its `cue_names` masks."""
    order = np.argsort(rows, kind="stable")  # h5py reads increasing indices only
    back = np.argsort(order, kind="stable")

    def read(name):
        return imageset.masks(name, rows[order]).astype(bool)[back]

    obj = read("object")
    cue = np.zeros_like(obj)
    for m in cue_names:
        cue |= read(m)
    return region_masks(obj, cue, margin_px)


def pair_region_stats(nams: np.ndarray, masks: dict[str, np.ndarray] | None) -> dict[str, float]:
    """STAT_COLUMNS for one pair (or component) from its maps `nams` (n, H, W) and per-image region
    masks (`region_masks`; None: no masks, all NaN).

    `mass_/area_/hot_object` and `hot_object_near` (the hot region's share on `object_near`, what
    the automatic annotator reads) are `region_masses` over all n maps. `cue_share` is the fraction of images that show the class's planted cue; the cue's and
    the rest's statistics and `hot_object_cued` (the object's hot share) are taken over those
    images only: whether a map lies on a cue can only be asked where the cue is, and a class that
    shows its cue part of the time (the collision variant's hexagon, on water in half of its
    images) would otherwise have it diluted by the images without it.
    """
    out = dict.fromkeys(STAT_COLUMNS, np.nan)
    if masks is None or not len(nams):
        return out
    whole = region_masses(nams, {"object": masks["object"], "object_near": masks["object_near"]})
    out["mass_object"], out["area_object"], out["hot_object"] = whole["object"]
    out["hot_object_near"] = whole["object_near"][2]
    shown = masks["cue"].reshape(len(nams), -1).any(1)
    out["cue_share"] = float(shown.mean())
    if shown.any():
        stats = region_masses(nams[shown], {r: masks[r][shown] for r in ("object", "cue", "rest")})
        for r in ("cue", "rest"):
            out[f"mass_{r}"], out[f"area_{r}"], out[f"hot_{r}"] = stats[r]
        out["hot_object_cued"] = stats["object"][2]
    return out


class SalientSubsets:
    """Read access to a subsets file (layout in the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.f = open_h5(self.path, FORMAT, "salient subsets file")
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.f.attrs.items()}
        self.pairs = {name: self.f[f"pairs/{name}"][:] for name in self.f["pairs"]}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def close(self):
        self.f.close()

    @property
    def class_names(self) -> list[str]:
        return json.loads(self.attrs["class_names"])

    @property
    def planted_cues(self) -> dict[str, list[str]]:
        return json.loads(self.attrs["planted_cues"])

    def __len__(self) -> int:
        return len(self.pairs["class"])

    def pair_table(self, require=()):
        """One row per pair; `require`: pair datasets the caller reads (e.g. STAT_COLUMNS), refused
        by name when the file predates them."""
        import pandas as pd

        missing = [c for c in require if c not in self.pairs]
        if missing:
            raise SpurlabError(f"{self.path}: dataset pairs/{missing[0]} missing (written by an older spurlab); "
                               "rerun the subsets stage")  # fmt: skip
        df = pd.DataFrame(self.pairs)
        df.insert(1, "class_name", [self.class_names[c] for c in df["class"]])
        return df

    def members(self, p: int, nams: bool = True) -> dict[str, np.ndarray]:
        """Rows, activations and (float, [0, 1]) NAMs of pair `p`'s images."""
        s, n = int(self.pairs["start"][p]), int(self.pairs["count"][p])
        out = {"row": self.f["members/row"][s : s + n], "activation": self.f["members/activation"][s : s + n]}
        if nams:
            out["nam"] = self.f["members/nam"][s : s + n].astype(np.float32) / 255.0
        return out

    def attacks(self, p: int) -> np.ndarray:
        n = min(int(self.pairs["count"][p]), int(self.attrs["top_images"]))
        return self.f["top/attack"][p][:n]


MASKS_FORMAT = "spurlab.salient_masks"
KINDS = ("spurious", "core")


def consolidated_masks(members: dict[int, tuple[np.ndarray, np.ndarray]], features: list[int]):
    """Eq. 2: rows of the union of D(i, j) over `features`, and per row the max of their NAMs.

    `members[j]` = (rows, nams (n, H, W)) of D(i, j). Returns (rows (m,), masks (m, H, W)).
    """
    acc: dict[int, np.ndarray] = {}
    for j in features:
        rows, nams = members[j]
        for r, m in zip(rows.tolist(), nams):
            acc[r] = m.copy() if r not in acc else np.maximum(acc[r], m)
    rows = np.array(sorted(acc), dtype=np.int64)
    if not len(rows):
        return rows, np.zeros((0, 1, 1), np.float32)
    return rows, np.stack([acc[r] for r in rows.tolist()])


def run_consolidated_masks(subsets_path, annotations_path, out) -> dict:
    """Stage `salient_masks`: per class, the spurious mask of every image of DS(i) and the core
    mask of every image of DC(i) (eq. 2), from the subsets and the annotations table.

    Layout: `<kind>/row`, `<kind>/class` int64 (m,), `<kind>/mask` uint8 (m, H, W) (x 255) for kind
    in spurious, core, written class by class (rows grouped by class); attrs: subsets,
    annotations and image-set sha256.
    """
    subsets_sha = sha256_file(subsets_path)
    annotations = read_table(annotations_path, expect={"subsets_sha256": subsets_sha})
    label_of = {(int(r.class_index), int(r.feature_index)): r.label for r in annotations.itertuples()}
    with SalientSubsets(subsets_path) as subsets, atomic_path(out) as tmp, create_h5(tmp) as f:
        pairs = subsets.pair_table()
        size = subsets.f["members/nam"].shape[-1]
        ds = {}
        for kind in KINDS:
            ds[kind] = (
                f.create_dataset(f"{kind}/row", (0,), "int64", maxshape=(None,), chunks=(4096,), track_times=False),
                f.create_dataset(f"{kind}/class", (0,), "int64", maxshape=(None,), chunks=(4096,), track_times=False),
                f.create_dataset(f"{kind}/mask", (0, size, size), "uint8", maxshape=(None, size, size),
                                 chunks=(1, size, size), compression="gzip", track_times=False),
            )  # fmt: skip
        for i in sorted(pairs["class"].unique()):
            members = {}
            for p, j in zip(pairs.index[pairs["class"] == i], pairs["feature"][pairs["class"] == i]):
                m = subsets.members(p)
                members[int(j)] = (m["row"], m["nam"])
            for kind in KINDS:
                rows, masks = consolidated_masks(members, [j for j in members if label_of.get((int(i), j)) == kind])
                n0, n = ds[kind][0].shape[0], len(rows)
                for d, values in zip(ds[kind], (rows, np.full(n, i), np.round(masks * 255).astype(np.uint8))):
                    d.resize(n0 + n, axis=0)
                    if n:
                        d[n0:] = values
        f.attrs.update(
            format=MASKS_FORMAT,
            subsets_sha256=subsets_sha,
            annotations_sha256=sha256_file(annotations_path),
            imageset_sha256=subsets.attrs["imageset_sha256"],
        )
        return {kind: int(ds[kind][0].shape[0]) for kind in KINDS}


class ConsolidatedMasks:
    """Reader of a `salient_masks` file: `get(kind, i)` -> (rows, masks in [0, 1]) of class i."""

    def __init__(self, path, expect_subsets_sha256: str, expect_annotations_sha256: str):
        self.f = open_h5(path, MASKS_FORMAT, "consolidated-masks file")
        for key, want in (("subsets_sha256", expect_subsets_sha256), ("annotations_sha256", expect_annotations_sha256)):
            if self.f.attrs[key] != want:
                self.f.close()
                raise SpurlabError(f"{path}: made from other {key.split('_')[0]} than given; rebuild it")
        self.classes = {kind: self.f[f"{kind}/class"][:] for kind in KINDS}

    def get(self, kind: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.classes[kind]
        s, e = np.searchsorted(c, i, "left"), np.searchsorted(c, i, "right")
        return self.f[f"{kind}/row"][s:e], self.f[f"{kind}/mask"][s:e].astype(np.float32) / 255.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
