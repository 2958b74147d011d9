"""Figures people look at instead of reading numbers: contact sheets of image sets and the report's
figures, drawn from the stage outputs. The figures the measure stages draw beside their summaries
are in `spurlab.measure.figures`; every figure file is written by `spurlab.io.figures.save_figure`."""

from __future__ import annotations

import os

import numpy as np

from ..data.imagesets import ImageSet
from ..discover.heatmap import heatmap
from ..errors import SpurlabError
from ..io.figures import save_figure
from ..measure.figures import gap_figure, noise_curves

# One outline colour per mask, cycling; the object outline is white.
_OUTLINE = np.array(
    [
        [1.0, 0.2, 0.2],
        [0.2, 1.0, 0.2],
        [0.3, 0.5, 1.0],
        [1.0, 0.9, 0.1],
        [1.0, 0.3, 1.0],
        [0.1, 1.0, 1.0],
        [1.0, 0.6, 0.1],
    ]
)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, iterations=1, border_value=0)


def contact_sheet(imageset, out: str | os.PathLike, n: int = 48, cols: int = 8, zoom: int = 3) -> None:
    """A grid of the first `n` images of an image set, with the object mask outlined in white and
    each cue mask in its own colour (legend below); titles name the class and the cues present.

    The grid is one mosaic image in one axes: with 48 titled axes and a tight layout, laying out
    and drawing took half of each contact-sheet job (one per image set): 4.6 s, now 2.1-2.4 s."""
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
    h, w = imgs.shape[1] * zoom, imgs.shape[2] * zoom
    top, side = round(0.3 * h), round(0.05 * w)  # room for a two-line title above each tile
    mosaic = np.ones((rows * (h + top), cols * (w + side), 3), np.float32)
    fig, ax = plt.subplots(figsize=(cols * 1.35, rows * 1.5 + 0.6))
    for i in range(n):
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
        y, x = (i // cols) * (h + top) + top, (i % cols) * (w + side) + side // 2
        mosaic[y : y + h, x : x + w] = img
        title = names[labels[i]] if labels[i] >= 0 else "(no object)"
        ax.text(x + w / 2, y - 2, title + ("\n" + ",".join(shown) if shown else ""), ha="center", va="bottom",
                fontsize=6)  # fmt: skip
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    handles = [Patch(color="white", ec="k", label="object")] + [Patch(color=colours[m], label=m) for m in cue_masks]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False)
    fig.suptitle(
        f"{imageset.attrs.get('set_name', imageset.path.stem)}: first {n} of {len(imageset)} images", fontsize=9
    )
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.06, top=0.95)
    save_figure(fig, out)


# ---------------------------------------------------------------------------------------------
# Report figures (issue #9): the papers' key figures from the stage outputs, PNG + SVG.


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_rows(imageset, rows) -> np.ndarray:
    """Images of `rows` in the given order (h5py reads increasing indices only)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros((0, imageset.image_size, imageset.image_size, 3), np.uint8)
    uniq, back = np.unique(rows, return_inverse=True)
    return imageset.images(uniq)[back]


def gap_correlation_heatmap(corr, out, svg=None) -> None:
    """Moayeri et al. fig. 7: Pearson r of class-wise spurious gaps between every pair of models."""
    plt = _plt()
    models = list(dict.fromkeys(list(corr["model_a"]) + list(corr["model_b"])))
    m = np.eye(len(models))
    for r in corr.itertuples():
        i, j = models.index(r.model_a), models.index(r.model_b)
        m[i, j] = m[j, i] = r.pearson_r
    fig, ax = plt.subplots(figsize=(1.2 * len(models) + 2.2, 1.0 * len(models) + 1.4))
    im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(models)):
        for j in range(len(models)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, label="Pearson r of class gaps")
    n = int(corr["n_classes"].max()) if len(corr) else 0
    ax.set_title(f"Spurious gap correlation between models ({n} classes)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, svg)


def tuning_rank_figure(tuning, out, svg=None, split: str = "test") -> None:
    """Moayeri et al. fig. 8 analogue: accuracy on the lowest- vs highest-spuriosity images of each
    class, before and after head tuning by each method (mean over trials); a flatter line is a
    smaller spurious gap. `split`: the held-out split when the table has it, else its first."""
    plt = _plt()
    if tuning.empty:
        raise SpurlabError("tuning figure: the head-tuning tables have no rows")
    if split not in set(tuning["split"]):
        split = str(tuning["split"].iloc[0])
    t = tuning[tuning["split"] == split]
    models = list(dict.fromkeys(t["model"]))
    colours = {"low_spuriosity": "tab:green", "random": "tab:gray", "misclassified": "tab:red"}
    fig, axes = plt.subplots(1, len(models), figsize=(2.8 * len(models), 3.0), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        g = t[t["model"] == model].groupby(["method", "when"])[["acc_low", "acc_high"]].mean()
        before = g.xs("before", level="when").mean()
        ax.plot([0, 1], 100 * before.to_numpy(), color="black", marker="o", lw=2, label="before")
        for method in g.index.get_level_values("method").unique():
            if (method, "after") in g.index:
                a = g.loc[(method, "after")]
                ax.plot([0, 1], 100 * a.to_numpy(), color=colours.get(method, "tab:blue"), marker="o", ls="--",
                        label=f"after, {method}")  # fmt: skip
        ax.set_xticks([0, 1], ["lowest\nspuriosity", "highest\nspuriosity"], fontsize=7)
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(model, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"accuracy on {split} (%)")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Accuracy vs spuriosity rank before and after head tuning", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, svg)


def spuriosity_extremes(rankings, imageset, out, svg=None, n: int = 5, max_classes: int = 10) -> None:
    """Moayeri et al. fig. 3: per class its `n` lowest- and `n` highest-spuriosity images."""
    plt = _plt()
    r = rankings.dropna(subset=["spuriosity"])
    classes = list(dict.fromkeys(r.sort_values("class_index")["class_name"]))[:max_classes]
    fig, axes = plt.subplots(len(classes), 2 * n + 1, figsize=((2 * n + 1) * 0.9, 0.95 * len(classes) + 0.5),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * n + [0.25] + [1] * n})  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for i, c in enumerate(classes):
        g = r[r["class_name"] == c].sort_values("spuriosity")
        low, high = g["row"].to_numpy()[:n], g["row"].to_numpy()[::-1][:n]
        for j, img in enumerate(read_rows(imageset, low)):
            axes[i, j].imshow(img)
        for j, img in enumerate(read_rows(imageset, high)):
            axes[i, n + 1 + j].imshow(img)
        axes[i, 0].set_title(c, fontsize=7, loc="left", pad=1)
    axes[0, 0].text(0, 1.45, "lowest spuriosity", transform=axes[0, 0].transAxes, fontsize=8)
    axes[0, n + 1].text(0, 1.45, "highest spuriosity", transform=axes[0, n + 1].transAxes, fontsize=8)
    fig.tight_layout(pad=0.3)
    save_figure(fig, out, svg)


def component_panels(components: dict, pairs, imageset, out, svg=None, per_class: int = 1, max_rows: int = 10,
                     n_top: int = 3) -> None:  # fmt: skip
    """Neuhaus et al. fig. 2: per neural PCA component its NPFV, the NPFV's Grad-CAM and its top
    images with their Grad-CAMs; the title carries the annotation. `components`: arrays of
    components.h5 (class, component, npfv, npfv_cam, top_rows, top_cam)."""
    plt = _plt()
    label = {(r["class"], r["feature"]): r["label"] for _, r in pairs[pairs["kind"] == "component"].iterrows()}
    names = dict(zip(pairs["class"], pairs["class_name"]))
    picked, seen = [], {}
    for i, k in enumerate(components["class"]):
        if seen.get(k, 0) < per_class and len(picked) < max_rows:
            picked.append(i)
            seen[k] = seen.get(k, 0) + 1
    fig, axes = plt.subplots(
        len(picked), 2 + n_top, figsize=((2 + n_top) * 1.2, 1.3 * len(picked) + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, i in enumerate(picked):
        k, c = int(components["class"][i]), int(components["component"][i])
        lab = label.get((k, c), "unannotated")
        axes[r, 0].imshow(components["npfv"][i])
        axes[r, 0].set_title(f"{names.get(k, k)} c{c}: {lab}", fontsize=6, loc="left",
                             color="tab:red" if lab == "spurious" else "tab:green")  # fmt: skip
        axes[r, 1].imshow(heatmap(components["npfv"][i], components["npfv_cam"][i] / 255.0))
        rows = components["top_rows"][i][:n_top]
        for j, img in enumerate(read_rows(imageset, rows[rows >= 0])):
            axes[r, 2 + j].imshow(heatmap(img, components["top_cam"][i][j] / 255.0))
    axes[0, 1].text(0, 1.35, "NPFV Grad-CAM", transform=axes[0, 1].transAxes, fontsize=6)
    axes[0, 2].text(0, 1.35, "top images, Grad-CAM", transform=axes[0, 2].transAxes, fontsize=6)
    fig.tight_layout(pad=0.3)
    save_figure(fig, out, svg)


def spufix_figure(models, out, svg=None) -> None:
    """Neuhaus et al. table 3 analogue: spurious score (ROC-AUC, 1 = not fooled) on cue-only and
    retrieved negatives, and test accuracy, before and after SpuFix, per model."""
    plt = _plt()
    panels = [
        ("cue_only_auc", "spurious AUC, cue-only"),
        ("retrieved_auc", "spurious AUC, retrieved"),
        ("acc", "test accuracy"),
    ]
    panels = [p for p in panels if f"{p[0]}_before" in models.columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    x = np.arange(len(models))
    for ax, (key, title) in zip(axes[0], panels):
        ax.bar(x - 0.2, models[f"{key}_before"], 0.4, label="before", color="tab:gray")
        ax.bar(x + 0.2, models[f"{key}_after"], 0.4, label="after SpuFix", color="tab:purple")
        ax.set_xticks(x, models["model"], rotation=30, ha="right", fontsize=7)
        lo = float(np.nanmin(models[[f"{key}_before", f"{key}_after"]].to_numpy()))
        ax.set_ylim(max(0.0, lo - 0.1), 1.0)
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Spurious score before and after SpuFix", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, svg)


def bam_summary_figure(summary: dict, out, svg=None) -> None:
    """Yang & Kim figs. 4 and 6 from results/bam/summary.json (MCS bars, k-series curves)."""
    import pandas as pd

    from ..measure.bam_summary import bam_figure

    drops = {float(k): v for k, v in summary["k_series_accuracy_drop"].items()}
    k_values = sorted(drops)
    series = pd.DataFrame([{"method": m, "k": float(k), "mcs": v} for m, e in summary["methods"].items()
                           for k, v in (e.get("mcs_k_series") or {}).items()])  # fmt: skip
    if series.empty:
        series = pd.DataFrame(columns=["method", "k", "mcs"])
    bam_figure(summary, series, k_values=k_values, drops=drops, path=out, svg=svg)


def _one(inputs: dict, key: str):
    paths = inputs.get(key) or []
    if len(paths) != 1:
        raise SpurlabError(f"report figure: needs exactly one --input {key}=PATH, got {len(paths)}")
    return paths[0]


def _concat(paths):
    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def make_report_figure(name: str, inputs: dict[str, list], out, svg, settings: dict | None = None) -> None:
    """Draw report figure `name` from its inputs (key -> paths), as PNG `out` and SVG `svg`."""
    import json

    import pandas as pd

    settings = settings or {}
    if name == "noise_curves":
        noise = {}
        for p in inputs.get("noise", []):
            t = pd.read_parquet(p)
            noise[str(t["model"].iloc[0])] = t
        summary = json.loads(open(_one(inputs, "summary")).read())
        t = next(iter(noise.values()))
        names = dict(zip(t["class_index"], t["class_name"]))
        both = [i for i, n in names.items() if n in summary.get("classes_with_both", [])] or sorted(names)
        noise_curves(noise, both, names, out, svg)
    elif name == "spurious_gaps":
        gap_figure(pd.read_parquet(_one(inputs, "models")), pd.read_parquet(_one(inputs, "gaps")), out, svg)
    elif name == "gap_correlations":
        gap_correlation_heatmap(pd.read_parquet(_one(inputs, "correlations")), out, svg)
    elif name == "tuning_ranks":
        tuning_rank_figure(_concat(inputs.get("tuning", [])), out, svg)
    elif name == "spuriosity_extremes":
        rankings = pd.read_parquet(_one(inputs, "rankings"))
        set_name = settings.get("set") or str(rankings["set"].iloc[0])
        with ImageSet(_one(inputs, "imageset")) as imageset:
            spuriosity_extremes(rankings[rankings["set"] == set_name], imageset, out, svg)
    elif name == "npca_components":
        import h5py

        with h5py.File(_one(inputs, "components"), "r") as f:
            comp = {k: f[k][()] for k in ("class", "component", "npfv", "npfv_cam", "top_rows", "top_cam")}
        with ImageSet(_one(inputs, "imageset")) as imageset:
            component_panels(comp, pd.read_parquet(_one(inputs, "pairs")), imageset, out, svg)
    elif name == "spufix":
        spufix_figure(pd.read_parquet(_one(inputs, "models")), out, svg)
    elif name == "bam_mcs":
        bam_summary_figure(json.loads(open(_one(inputs, "summary")).read()), out, svg)
    else:
        raise SpurlabError(f"report figure '{name}': unknown (known: {', '.join(REPORT_FIGURES)})")


REPORT_FIGURES = ("noise_curves", "spurious_gaps", "gap_correlations", "tuning_ranks", "spuriosity_extremes",
                  "npca_components", "spufix", "bam_mcs")  # fmt: skip
