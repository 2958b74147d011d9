"""Figures of the interventional checks (docs/methods.md#interventional-checks-of-explanations): the
summary figure (planted order, deletion and preservation per method, correlational vs
interventional scores, background-swap flips) and the example panels of a family job (an image,
its re-rendered twins with the model's predictions, and each method's map)."""

from __future__ import annotations

import numpy as np

from ..io.figures import save_figure

FAMILY_TITLES = {"bam": "BAM (cue = scene)", "posthoc": "post hoc (cue = signal)"}
CORRELATIONAL_LABELS = {"mcs": "MCS (BAM)", "kssd": "K-SSD (Adebayo et al.)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def examples_figure(path, panels: list[dict], title: str, svg=None) -> None:
    """One row per panel {'title', 'images': [(uint8 image, caption)], 'maps': [(map, caption)]}."""
    plt = _pyplot()
    n = max(len(panels), 1)
    cols = max([len(p["images"]) + len(p["maps"]) for p in panels] or [1])
    fig, axes = plt.subplots(n, cols, figsize=(1.25 * cols, 1.45 * n + 0.5), squeeze=False)
    for i, p in enumerate(panels):
        for j, (im, caption) in enumerate(p["images"]):
            axes[i, j].imshow(im)
            axes[i, j].set_title(caption, fontsize=5)
        for j, (m, caption) in enumerate(p["maps"], start=len(p["images"])):
            axes[i, j].imshow(m, cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_title(caption, fontsize=5)
        axes[i, 0].text(-0.15, 0.5, p["title"], transform=axes[i, 0].transAxes, rotation=90, fontsize=5,
                        va="center", ha="right")  # fmt: skip
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, svg)


def _planted(ax, summary: dict) -> None:
    """Flips by removing each part, per model; for a contaminated model also the normal model's
    flips by removing the same cue from the same images (`cue_reliance`, what it is judged by)."""
    labels, obj, cue, ref = [], [], [], []
    for fam, f in summary["families"].items():
        reference = {r["model"]: r for r in (f.get("cue_reliance") or {}).values()}
        for model, rec in f["models"].items():
            labels.append(f"{fam} {model}\n(relies on {rec['planted']})")
            obj.append(rec["flip_remove_object"] or 0.0)
            cue.append(rec["flip_remove_cue"] or 0.0)
            ref.append((reference[model]["reference_flip_remove_cue"] or 0.0) if model in reference else np.nan)
    x = np.arange(len(labels))
    ax.bar(x - 0.27, obj, 0.27, label="object removed", color="#4c72b0")
    ax.bar(x, cue, 0.27, label="cue removed", color="#dd8452")
    if not np.isnan(ref).all():
        ax.bar(x + 0.27, ref, 0.27, label="cue removed, normal model (same images)", color="#8c8c8c")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=5)
    ax.set_ylim(0, 1.25)  # room for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("prediction flips", fontsize=7)
    ax.set_title("planted truth: removing the relied-on part flips the prediction", fontsize=7)
    ax.legend(fontsize=5, loc="upper center", ncol=2)


def _scores(ax, fam: str, f: dict | None) -> None:
    ax.set_title(f"{FAMILY_TITLES.get(fam, fam)}: deletion / preservation", fontsize=7)
    if f is None:
        ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
        return
    names = list(f["methods"]) + ["oracle", "always_object", "always_cue"]
    recs = [f["methods"].get(m) or f["baselines"][m] for m in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [r["deletion"] or 0.0 for r in recs], 0.4, label="deletion", color="#55a868")
    ax.bar(x + 0.2, [r["preservation"] or 0.0 for r in recs], 0.4, label="preservation", color="#8172b3")
    ax.axvline(len(f["methods"]) - 0.5, color="gray", lw=0.6, ls="--")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=5)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)


def _agreement(ax, fam: str, r: dict | None) -> None:
    ax.set_title(f"{FAMILY_TITLES.get(fam, fam)}: correlational vs interventional", fontsize=7)
    if not r or not r["methods"]:
        ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
        return
    # by score, labels alternately above and below their point: methods with close scores do not overprint
    order = sorted(r["methods"], key=lambda m: (r["interventional_scores"][m], r["correlational_scores"][m]))
    for i, m in enumerate(order):
        xv, yv = r["correlational_scores"][m], r["interventional_scores"][m]
        ax.scatter([xv], [yv], s=12)
        ax.annotate(m, (xv, yv), xytext=(3, 3 if i % 2 else -8), textcoords="offset points", fontsize=5)
    rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.2f}"
    tau = "n/a" if r["kendall"] is None else f"{r['kendall']:.2f}"
    ax.set_xlabel(CORRELATIONAL_LABELS.get(r["correlational"], r["correlational"]), fontsize=7)
    ax.set_ylabel("(deletion + preservation) / 2", fontsize=7)
    ax.text(0.02, 0.95, f"Spearman {rho}, Kendall {tau} (n={r['n']})", transform=ax.transAxes, fontsize=6, va="top")


def _background(ax, bg: dict | None) -> None:
    ax.set_title("background swap (mixed-rand): prediction flips", fontsize=7)
    if not bg:
        ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
        return
    models = list(bg)
    x = np.arange(len(models))
    for off, key, label in ((-0.27, "flip_rate", "all"), (0.0, "flip_rate_own_background_cue", "own class's background cue"),
                            (0.27, "flip_rate_other", "other images")):  # fmt: skip
        ax.bar(x + off, [bg[m][key] or 0.0 for m in models], 0.27, label=label)
    ax.set_xticks(x, models, rotation=30, ha="right", fontsize=5)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=5)


def summary_figure(summary: dict, path, svg=None) -> None:
    """2 x 3 panels: planted order, deletion / preservation per family, correlational vs
    interventional scores per family, background-swap flips."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    _planted(axes[0, 0], summary)
    fams = summary["families"]
    _scores(axes[0, 1], "bam", fams.get("bam"))
    _scores(axes[0, 2], "posthoc", fams.get("posthoc"))
    _agreement(axes[1, 0], "bam", summary["ranking_agreement"].get("bam"))
    _agreement(axes[1, 1], "posthoc", summary["ranking_agreement"].get("posthoc"))
    _background(axes[1, 2], (summary.get("background_swap") or {}).get("models"))
    for ax in axes.ravel():
        ax.tick_params(labelsize=5)
    fig.suptitle(
        "Interventional checks of explanations (re-rendered twins; FunnyBirds, ImageNet-9 backgrounds)", fontsize=9
    )
    fig.tight_layout()
    save_figure(fig, path, svg)
