"""The measure stages' figures (Salient ImageNet, Spuriosity Rankings): what the `salient` and
`spuriosity` targets draw beside their summaries, PNG (+ SVG when asked)."""

from __future__ import annotations

import os

import numpy as np

from ..io.figures import save_figure


def noise_curves(noise: dict, classes: list[int], names: dict, out: str | os.PathLike, svg=None) -> None:
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
    save_figure(fig, out, svg)


def feature_grid(rows: list[dict], out: str | os.PathLike, zoom: int = 2) -> None:
    """One row per class, one column per top feature: its top image with the NAM heatmap; the title
    gives the feature, its annotation and (when known) why it is truly spurious.
    `rows`: dicts with class_name, feature, rank, label, heatmap (uint8 HxWx3) and truth: None
    (unknown), "" (not spurious), "cue" (shows a planted cue) or "no <cue>" (a planted cue switches
    it off)."""
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
        mark = f" ({r['truth']})" if r["truth"] else ""
        colour = "tab:red" if r["label"] == "spurious" else "tab:green"
        ax.set_title(f"{r['class_name']} f{r['feature']}\n{r['label']}{mark}", fontsize=6, color=colour, pad=2)
    fig.suptitle("Top features per class: NAM heatmap on the top image (red: annotated spurious)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def crop_sheet(panels: list, out: str | os.PathLike, zoom: int = 2) -> None:
    """Label-noise candidates (Moayeri et al. fig. 9): per negative-gap class, its highest-
    spuriosity images with the core-crop box drawn (top row) and the crops (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if not panels:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no class has a negative spurious gap", ha="center", va="center", fontsize=9)
        save_figure(fig, out)
        return
    cols = max(len(p[1]) for p in panels)
    size = panels[0][1].shape[1] * zoom / 72
    fig, axes = plt.subplots(2 * len(panels), cols, figsize=(cols * size, 2 * len(panels) * size + 0.3),
                             squeeze=False)  # fmt: skip
    for k, (name, images, crops, boxes) in enumerate(panels):
        for j in range(cols):
            top, bottom = axes[2 * k][j], axes[2 * k + 1][j]
            top.axis("off")
            bottom.axis("off")
            if j >= len(images):
                continue
            top.imshow(images[j])
            y0, x0, y1, x1 = boxes[j]
            top.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.2))
            bottom.imshow(crops[j])
        axes[2 * k][0].set_title(f"{name}: highest spuriosity, core crop below", fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    save_figure(fig, out)


def gap_figure(suite, gaps, out: str | os.PathLike, svg=None) -> None:
    """Spuriosity Rankings fig. 6: accuracy on the lowest vs highest spuriosity images per model
    with the suite's least-squares line (effective robustness is the distance above it), and the
    class-wise spurious gaps of every model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [1, 1.6]})
    x, y = 100 * suite["acc_high"].to_numpy(float), 100 * suite["acc_low"].to_numpy(float)
    left.scatter(x, y, s=30, zorder=3)
    for name, xi, yi in zip(suite["model"], x, y):
        left.annotate(name, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.linspace(x.min() - 2, x.max() + 2, 10)
        left.plot(xs, slope * xs + intercept, color="gray", lw=1, ls="--", label="suite fit")
    lim = [min(x.min(), y.min()) - 5, 100]
    left.plot(lim, lim, color="black", lw=0.6, label="no gap")
    left.set_xlabel("accuracy, k highest spuriosity (%)")
    left.set_ylabel("accuracy, k lowest spuriosity (%)")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    wide = gaps.pivot(index="class_name", columns="model", values="gap")
    wide = wide.loc[wide.mean(axis=1).sort_values(ascending=False).index]
    width = 0.8 / max(1, wide.shape[1])
    for j, m in enumerate(wide.columns):
        right.bar(np.arange(len(wide)) + j * width - 0.4 + width / 2, 100 * wide[m], width, label=m)
    right.axhline(0, color="black", lw=0.6)
    right.set_xticks(np.arange(len(wide)), wide.index, rotation=30, fontsize=7, ha="right")
    right.set_ylabel("spurious gap (points)")
    right.legend(fontsize=6, ncol=2)
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out, svg)


def tuning_figure(summary: dict, out: str | os.PathLike, svg=None) -> None:
    """Spuriosity Rankings fig. 8: mean spurious gap vs validation accuracy before and after head
    tuning, one arrow per (model, method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"low_spuriosity": "tab:green", "random": "tab:gray", "misclassified": "tab:red"}
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for model, methods in summary.items():
        for method, e in methods.items():
            x0, y0, x1, y1 = (100 * e[k] for k in ("gap_before", "acc_before", "gap_after", "acc_after"))
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": colours.get(method, "k")})
            ax.scatter([x0], [y0], color="black", s=12, zorder=3)
            ax.scatter([x1], [y1], s=0)  # arrows do not extend the axes' data limits; the heads must show
            ax.annotate(model, (x0, y0), fontsize=6, xytext=(3, -8), textcoords="offset points")
    for method, c in colours.items():
        ax.plot([], [], color=c, label=method)
    ax.set_xlabel("mean spurious gap (points)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Head tuning: before (dot) -> after (arrow)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out, svg)
