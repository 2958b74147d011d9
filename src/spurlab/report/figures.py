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
    _save(fig, out)


def _save(fig, out) -> None:
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def noise_curves(noise: dict, classes: list[int], names: dict, out: str | os.PathLike) -> None:
    """Salient ImageNet fig. 6: per model, core accuracy (noise on spurious regions) and spurious
    accuracy (noise on core regions) against sigma; thin lines per class, thick the class mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(noise)
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.0), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], models):
        t = noise[m][(noise[m]["feature_index"] == -1) & noise[m]["class_index"].isin(classes)]
        for measure, colour, label in (("core_acc", "tab:blue", "core acc (noise on spurious)"),
                                       ("spurious_acc", "tab:red", "spurious acc (noise on core)")):  # fmt: skip
            g = t[t["measure"] == measure]
            for _, c in g.groupby("class_index"):
                ax.plot(c["sigma"], 100 * c["acc"], color=colour, alpha=0.25, lw=0.8)
            mean = g.groupby("sigma")["acc"].mean()
            ax.plot(mean.index, 100 * mean.values, color=colour, lw=2.2, marker="o", ms=3, label=label)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("noise sigma")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Core vs spurious accuracy under masked noise ({len(classes)} classes with both kinds of feature)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    _save(fig, out)


def feature_grid(rows: list[dict], out: str | os.PathLike, zoom: int = 2) -> None:
    """One row per class, one column per top feature: its top image with the NAM heatmap; the title
    gives the feature, its annotation and (when known) whether it truly localises a planted cue.
    `rows`: dicts with class_name, feature, rank, label, truth (bool | None), heatmap (uint8 HxWx3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(r["class_name"] for r in rows))
    k = max(r["rank"] for r in rows)
    fig, axes = plt.subplots(len(classes), k, figsize=(1.5 * k, 1.55 * len(classes)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r in rows:
        ax = axes[classes.index(r["class_name"]), r["rank"] - 1]
        ax.imshow(np.repeat(np.repeat(r["heatmap"], zoom, 0), zoom, 1), interpolation="nearest")
        mark = "" if r["truth"] is None else (" cue" if r["truth"] else "")
        colour = "tab:red" if r["label"] == "spurious" else "tab:green"
        ax.set_title(f"{r['class_name']} f{r['feature']}\n{r['label']}{mark}", fontsize=6, color=colour, pad=2)
    fig.suptitle("Top features per class: NAM heatmap on the top image (red: annotated spurious)", fontsize=8)
    fig.tight_layout()
    _save(fig, out)
