"""Targeted corruptions of feature regions (Moayeri et al. 2023, "Spuriosity Rankings", appendix
on feature sensitivities; docs/methods.md#targeted-corruptions).

Each corruption removes one kind of primitive information from a feature's region and keeps the
others: `gray` (colour), `blur` (texture), `patch_rotate` (shape: the region is cut into tiles, each
rotated by a random multiple of 90 degrees, which breaks long edges). Applied through a soft mask
m (B, H, W) in [0, 1]::

    x' = x * (1 - m) + m * T(x)

On D(i, j) (the top images of class i for feature j, docs/methods.md#class-feature-subsets; the paper's 65 per class) the region
is the NAM of j; for a feature annotated spurious, minus its overlap with the image's consolidated
core mask (the paper's filtering step, so core regions are never corrupted): m = nam * (1 - core),
core = 0 for an image without one. Sensitivity of a pair = accuracy change on its images; across
models, the Pearson r of sensitivities (paper: r = 0.724 for ResNet-50 vs DeiT-S).

The paper gives no numeric settings. Defaults (`CorruptionSettings`), chosen here:
- gray: ITU-R BT.601 luminance 0.299 R + 0.587 G + 0.114 B on all three channels (the standard
  "convert to L" weights; brightness is kept so only colour goes).
- blur sigma: 2 * H / 64 pixels (7 at 224), Gaussian kernel of odd size 2 * ceil(3 sigma) + 1
  (covers +-3 sigma). Scaled with image size so it removes the same relative detail at any size;
  at 2/64 of the side it wipes fine texture while coarse shape and mean colour stay.
- patch: H // 8 (28 at 224, an 8 x 8 grid): large enough for each tile to keep its local texture
  and colour, small enough that object-scale edges are cut. Rotations are uniform over
  {0, 90, 180, 270} degrees, the paper's "random multiple of 90" taken literally.
- seed 0. Tile rotations of image-set row r come from np.random.default_rng([seed, r]) (as the
  noise stage does), so every model and every pair sees the same corrupted image; same seed,
  same numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import torch

from ..config import Settings
from ..data.imagesets import ImageSet
from .spuriosity import pearson_r

CORRUPTIONS = ("gray", "blur", "patch_rotate")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


@dataclass
class CorruptionSettings(Settings):
    """Stage `corruptions` (config `spuriosity.corruptions`). blur_sigma: Gaussian sigma in pixels,
    None = 2 * H / 64; patch: tile side in pixels, None = H // 8 (must divide H and W); seed: of the
    per-row tile rotations."""

    SECTION = "spuriosity.corruptions"

    blur_sigma: float | None = None
    patch: int | None = None
    seed: int = 0

    def sigma_for(self, size: int) -> float:
        return float(self.blur_sigma) if self.blur_sigma is not None else 2.0 * size / 64

    def patch_for(self, size: int) -> int:
        return int(self.patch) if self.patch is not None else max(1, size // 8)

    def as_dict(self) -> dict:
        return asdict(self)


def gray(images: torch.Tensor) -> torch.Tensor:
    """Luminance replicated on the 3 channels: colour removed, brightness kept."""
    w = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand_as(images).contiguous()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (reflect padding), kernel 2 * ceil(3 sigma) + 1: texture removed."""
    from torchvision.transforms.functional import gaussian_blur

    if sigma <= 0:
        return images.clone()
    half = min(math.ceil(3 * sigma), min(images.shape[-2:]) - 1)  # reflect padding needs pad < side
    return gaussian_blur(images, [2 * half + 1] * 2, [float(sigma)] * 2)


def image_rngs(seed: int, rows) -> list[np.random.Generator]:
    """One generator per image: row r's draws depend only on (seed, r)."""
    return [np.random.default_rng([int(seed), int(r)]) for r in rows]


def patch_rotate(images: torch.Tensor, patch: int, rngs) -> torch.Tensor:
    """Cut into `patch` x `patch` tiles and rotate each by a random multiple of 90 degrees.

    `rngs`: one np.random.Generator for the whole batch (drawn image by image) or one per image.
    Every tile moves within itself only, so the pixel multiset is kept exactly.
    """
    b, c, h, w = images.shape
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch_rotate: patch {patch} must divide the image size {h} x {w}")
    nh, nw = h // patch, w // patch
    rngs = rngs if isinstance(rngs, (list, tuple)) else [rngs] * b
    if len(rngs) != b:
        raise ValueError(f"patch_rotate: {len(rngs)} generators for {b} images")
    turns = torch.from_numpy(np.stack([g.integers(0, 4, nh * nw) for g in rngs]).reshape(-1)).to(images.device)
    tiles = images.reshape((b, c, nh, patch, nw, patch)).permute((0, 2, 4, 1, 3, 5)).reshape(-1, c, patch, patch)
    out = tiles.clone()
    for k in (1, 2, 3):
        sel = turns == k
        out[sel] = torch.rot90(tiles[sel], k, (-2, -1))
    return out.reshape((b, nh, nw, c, patch, patch)).permute((0, 3, 1, 4, 2, 5)).reshape(b, c, h, w)


def corrupt_region(images: torch.Tensor, masks: torch.Tensor, kind: str, settings: CorruptionSettings,
                   rows) -> torch.Tensor:  # fmt: skip
    """x' = x * (1 - m) + m * T(x) for images (B, 3, H, W) of image-set `rows`, masks (B, H, W).

    m = 0 gives x bitwise, m = 1 gives T(x) bitwise.
    """
    size = images.shape[-2]
    if kind == "gray":
        t = gray(images)
    elif kind == "blur":
        t = blur(images, settings.sigma_for(size))
    elif kind == "patch_rotate":
        t = patch_rotate(images, settings.patch_for(size), image_rngs(settings.seed, rows))
    else:
        raise ValueError(f"unknown corruption '{kind}' (one of {', '.join(CORRUPTIONS)})")
    m = masks.to(images.dtype).unsqueeze(1)
    return images * (1 - m) + m * t


def region_masks(nams: np.ndarray, label: str, core: np.ndarray | None) -> np.ndarray:
    """The region to corrupt: a spurious feature's NAM without the core mask's overlap
    (nam * (1 - core)); any other feature's NAM as is. `core` (n, H, W), 0 where an image has none."""
    if label != "spurious" or core is None:
        return nams
    return nams * (1.0 - core)


def core_masks_for(core_masks, class_index: int, rows: np.ndarray, shape) -> np.ndarray:
    """Consolidated core masks of `rows` (n, H, W), zero for rows outside DC(i)."""
    have_rows, have = core_masks.get("core", int(class_index))
    where = {r: k for k, r in enumerate(np.asarray(have_rows).tolist())}
    out = np.zeros((len(rows), *shape), np.float32)
    for k, r in enumerate(np.asarray(rows).tolist()):
        if r in where:
            out[k] = have[where[r]]
    return out


@torch.no_grad()
def _predict(model, x: torch.Tensor, device) -> np.ndarray:
    from ..device import autocast

    with autocast(device):
        return model.logits(x).argmax(1).cpu().numpy()


@torch.no_grad()
def accuracy_under_corruptions(model, images: np.ndarray, rows: np.ndarray, label: int, masks: np.ndarray,
                               settings: CorruptionSettings, device, corruptions=CORRUPTIONS,
                               batch_size: int = 256) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """(clean correct (n,) bool, {corruption: correct (n,) bool}) for uint8 images (n, H, W, 3)."""
    n = len(images)
    clean = np.zeros(n, dtype=bool)
    hit = {k: np.zeros(n, dtype=bool) for k in corruptions}
    for s in range(0, n, batch_size):
        x = torch.from_numpy(images[s : s + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        m = torch.from_numpy(np.ascontiguousarray(masks[s : s + batch_size])).to(device).float()
        clean[s : s + len(x)] = _predict(model, x, device) == label
        for k in corruptions:
            xc = corrupt_region(x, m, k, settings, rows[s : s + batch_size])
            hit[k][s : s + len(x)] = _predict(model, xc, device) == label
    return clean, hit


def corruption_table(model, model_name: str, imageset, subsets, annotations, core_masks, settings: CorruptionSettings,
                     device, batch_size: int = 256, progress: bool = True) -> pd.DataFrame:  # fmt: skip
    """One model's tidy table: a row per (class i, feature j, corruption) over D(i, j).

    acc_clean / acc_corrupted: accuracy (label i) on the pair's images without / with the
    corruption of its region; delta = acc_corrupted - acc_clean; sem: standard error of the mean of
    the per-image difference; mask_mean: mean of the corrupted region's mask (area fraction).
    `core_masks`: a ConsolidatedMasks (only `get("core", i)` is used).
    """
    from tqdm import tqdm

    size = imageset.image_size
    pairs = subsets.pair_table()
    label_of = {(int(r.class_index), int(r.feature_index)): r.label for r in annotations.itertuples()}
    out = []
    for i in tqdm(
        sorted(pairs["class"].unique()), desc=f"corruptions {model_name}", unit="class", disable=not progress
    ):
        cp = pairs[pairs["class"] == i]
        members = {p: subsets.members(p) for p in cp.index}
        union = np.unique(np.concatenate([m["row"] for m in members.values()]))
        if not len(union):
            continue
        pos = {r: u for u, r in enumerate(union.tolist())}
        images = imageset.images(union)
        core = core_masks_for(core_masks, i, union, (size, size))
        for p, pr in cp.iterrows():
            rows, nams = members[p]["row"], members[p]["nam"]
            if not len(rows):
                continue
            j = int(pr["feature"])
            label = label_of.get((int(i), j), "unannotated")
            sel = np.array([pos[r] for r in rows.tolist()], dtype=np.int64)
            region = region_masks(nams, label, core[sel])
            clean, hit = accuracy_under_corruptions(model, images[sel], rows=rows, label=int(i), masks=region,
                                                    settings=settings, device=device,
                                                    batch_size=batch_size)  # fmt: skip
            n = len(rows)
            for kind in CORRUPTIONS:
                diff = hit[kind].astype(float) - clean
                out.append({
                    "model": model_name, "class_index": int(i), "class_name": pr["class_name"], "feature_index": j,
                    "feature_rank": int(pr["rank"]), "label": label, "corruption": kind, "n": n,
                    "acc_clean": float(clean.mean()), "acc_corrupted": float(hit[kind].mean()),
                    "delta": float(diff.mean()),
                    "sem": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                    "mask_mean": float(region.mean()),
                })  # fmt: skip
    return pd.DataFrame(out)


def run_corruptions(model_dir, model_name: str, imageset_path, subsets_path, annotations_path, masks_path, out,
                    settings: CorruptionSettings, device: str = "auto", batch_size: int = 256,
                    progress: bool = True) -> dict:  # fmt: skip
    """Stage `corruptions`: one model's targeted-corruption table (`out`, .parquet + .csv)."""
    from .noise import run_on_subsets

    def measure(model, dev, imageset, subsets, annotations, masks):
        return corruption_table(model, model_name, imageset=imageset, subsets=subsets, annotations=annotations,
                                core_masks=masks, settings=settings, device=dev, batch_size=batch_size,
                                progress=progress)  # fmt: skip

    with ImageSet(imageset_path) as imageset:
        size = imageset.image_size
    used = {"blur_sigma_px": settings.sigma_for(size), "patch_px": settings.patch_for(size)}  # the values applied
    return run_on_subsets(measure, model_dir, imageset_path=imageset_path, subsets_path=subsets_path,
                          annotations_path=annotations_path, masks_path=masks_path, out=out, device=device,
                          settings={**settings.as_dict(), **used})  # fmt: skip


def sensitivity_correlation(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Pearson r of `delta` for every model pair over their common (class, feature, corruption)
    rows, over all corruptions ("all") and per corruption. NaN where a side is constant."""
    key = ["class_index", "feature_index", "corruption"]
    rows = []
    for a, b in combinations(tables, 2):
        both = tables[a][key + ["delta"]].merge(tables[b][key + ["delta"]], on=key, suffixes=("_a", "_b"))
        both = both.dropna(subset=["delta_a", "delta_b"])
        groups = [("all", both)] + [(k, both[both["corruption"] == k]) for k in CORRUPTIONS]
        for name, g in groups:
            r = pearson_r(g["delta_a"], g["delta_b"])
            rows.append({"model_a": a, "model_b": b, "corruption": name, "pearson_r": r, "n": len(g)})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "corruption", "pearson_r", "n"])
