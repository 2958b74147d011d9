"""Region means of normalised maps: g_c(f, x) of Yang & Kim 2019, sec. 4.1 (docs/methods.md#bam-metrics)."""

from __future__ import annotations

import numpy as np
import torch


def region_means(maps: torch.Tensor, masks: np.ndarray | torch.Tensor) -> np.ndarray:
    """g_c = sum(e * I_c) / sum(I_c) per image: `maps` (B, H, W) in [0, 1], `masks` (B, H, W) 0/1.

    An empty region gives NaN (no pixels to average), never a silent 0.
    """
    m = torch.as_tensor(np.asarray(masks), dtype=torch.float64)
    e = maps.detach().double()
    area = m.sum((1, 2))
    total = (e * m).sum((1, 2))
    out = torch.where(area > 0, total / area.clamp(min=1), torch.full_like(total, float("nan")))
    return out.numpy()


def random_masks(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The MCS / IDR baseline's random regions I_c (Yang & Kim, app. G): each image gets the
    region of another image of the same set, so areas and shapes keep their distribution but the
    region is unrelated to the image's content."""
    n = len(masks)
    if n < 2:
        return masks.copy()
    perm = rng.permutation(n)
    fixed = perm == np.arange(n)
    # no image keeps its own region: roll the fixed points onto a neighbour
    perm[fixed] = (perm[fixed] + 1) % n
    return masks[perm]


def outside(regions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """`regions` with each image's own `masks` pixels removed: the IDR baseline's random regions.

    A random region that overlaps the common feature inherits the feature's IDR instead of
    measuring chance: BAM objects under the reference code's scale rule cover the image centre, so
    about half of another image's object region lies on this image's object (Yang & Kim's smaller
    objects overlap far less). An image whose region lies wholly inside its object gets an empty
    region, hence a NaN region mean, which the metrics drop.
    """
    regions = np.asarray(regions)
    return np.where(np.asarray(masks) > 0, 0, regions).astype(regions.dtype)
