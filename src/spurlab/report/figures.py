"""Figures people look at instead of reading numbers."""

from __future__ import annotations

import os

import numpy as np

# One outline colour per mask, cycling; the object outline is white.
_OUTLINE = np.array(
    [[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.3, 0.5, 1.0], [1.0, 0.9, 0.1], [1.0, 0.3, 1.0], [0.1, 1.0, 1.0], [1.0, 0.6, 0.1]]
)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, iterations=1, border_value=0)


def contact_sheet(imageset, out: str | os.PathLike, n: int = 48, cols: int = 8, zoom: int = 3) -> None:
    """A grid of the first `n` images of an image set, with the object mask outlined in white and
    each cue mask in its own colour (legend below); titles name the class and the cues present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..io import atomic_path

    n = min(n, len(imageset))
    imgs = imageset.images(slice(0, n)).astype(np.float32) / 255.0
    labels = imageset.labels[:n]
    names = imageset.class_names
    cue_masks = [m for m in imageset.mask_names if m != "object"]
    colours = {m: _OUTLINE[i % len(_OUTLINE)] for i, m in enumerate(cue_masks)}
    present = {m: imageset.masks(m, slice(0, n)).astype(bool) for m in cue_masks}
    obj = imageset.masks("object", slice(0, n)).astype(bool) if "object" in imageset.mask_names else None
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.35, rows * 1.5 + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.repeat(np.repeat(imgs[i], zoom, axis=0), zoom, axis=1)
        shown = []
        layers = ([("object", obj[i], np.ones(3))] if obj is not None else []) + [
            (m, present[m][i], colours[m]) for m in cue_masks
        ]
        for name, mask, colour in layers:
            if not mask.any():
                continue
            big = np.repeat(np.repeat(mask, zoom, axis=0), zoom, axis=1)
            img[_outline(big)] = colour
            if name != "object":
                shown.append(name)
        ax.imshow(img, interpolation="nearest")
        title = names[labels[i]] if labels[i] >= 0 else "(no object)"
        ax.set_title(title + ("\n" + ",".join(shown) if shown else "\n"), fontsize=6, pad=2)
    handles = [Patch(color="white", ec="k", label="object")] + [Patch(color=colours[m], label=m) for m in cue_masks]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False)
    fig.suptitle(f"{imageset.attrs.get('set_name', imageset.path.stem)}: first {n} of {len(imageset)} images", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
