"""Heatmaps for display: a map (a NAM, a Grad-CAM) over its image in the jet colour map. Apart from
spurlab.discover.nam (torch), so that the task pages, the summaries' grids and the report draw them
without loading torch (docs/performance.md#per-job-fixed-cost).
"""

from __future__ import annotations

import numpy as np


def heatmap(image: np.ndarray, nam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Display only: the jet colour map of `nam` added to `image` (H, W, 3) and renormalised.

    `image` is uint8 or float in [0, 1]; `nam` is (H, W) in [0, 1]. Returns uint8 (H, W, 3).
    """
    from matplotlib import colormaps

    img = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    jet = colormaps["jet"](np.clip(nam, 0, 1))[..., :3].astype(np.float32)
    out = img + weight * jet
    out = out / max(float(out.max()), 1e-12)
    return np.round(out * 255).astype(np.uint8)
