"""The `mitigation` target's outputs (docs/methods.md#group-robustness-and-last-layer-retraining):
results/mitigation/summary.json, the mitigation table (per audited model and method, means over
trials) and its figure, from the per-model tables of stage `group_robustness`.

Per model and method: mean accuracy and spurious gap on the test set, worst-group and mean-group
accuracy on the counterfactual twins, the accuracy of every group, the labels the method needed,
and its worst-group accuracy against the ERM head's and DFR's. `acceptance` holds the issue's
check: DFR raises every audited model's worst-group accuracy over its ERM head.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from ..errors import SpurlabError
from ..io import sha256_file, write_json
from ..io.figures import save_figure
from ..io.tables import read_table, table_provenance, write_table
from ..measure.groups import GROUP_COLUMNS
from ..measure.spuriosity_summary import trials_ci
from ..stats import bootstrap_ci
from .group_robustness import METHODS, SUPERVISION, TABLE_COLUMNS

METRICS = ["acc", "gap", "acc_high", "acc_low", "worst_group_acc", "mean_group_acc"]
LABEL_FREE = ("low_spuriosity", "spufix")


def read_model_tables(tables: dict, groups: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every audited model's method table and group table, checked: each names its model, a group
    table has its method table's provenance, and every model ran with the same settings."""
    settings, frames, group_frames = None, [], []
    for model, path in tables.items():
        prov = table_provenance(path)
        if prov.get("model") != model:
            raise SpurlabError(f"{path}: provenance 'model' is {prov.get('model')!r}, not {model!r}")
        if model not in groups or table_provenance(groups[model]) != prov:
            raise SpurlabError(f"{groups.get(model, model)}: not the group table of {path} (provenance differs); "
                               "rebuild both")  # fmt: skip
        if settings is None:
            settings = prov["settings"]
        elif prov["settings"] != settings:
            raise SpurlabError(
                f"{path}: settings differ from those of {next(iter(tables.values()))}; rebuild the tables"
            )
        frames.append(read_table(path, columns=TABLE_COLUMNS))
        group_frames.append(read_table(groups[model], columns=["model", "method", "trial", *GROUP_COLUMNS]))
    if not frames:
        raise SpurlabError("mitigation summary: no model table given")
    return pd.concat(frames, ignore_index=True), pd.concat(group_frames, ignore_index=True), settings


def mitigation_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method): METRICS averaged over trials, with the SEM of worst_group_acc
    over trials (NaN for one trial), the worst group of the first trial and what each trial selected."""
    rows = []
    for (model, method), g in table.groupby(["model", "method"], sort=False):
        wga = g["worst_group_acc"].to_numpy(float)
        rows.append({"model": model, "method": method, "labels_needed": g["labels_needed"].iloc[0],
                     **{m: float(g[m].mean()) for m in METRICS},
                     "worst_group_acc_sem": float(wga.std(ddof=1) / math.sqrt(len(wga))) if len(wga) > 1 else float("nan"),
                     "worst_group": g["worst_group"].iloc[0], "trials": len(g),
                     "selected": "; ".join(dict.fromkeys(g["selected"].astype(str))),
                     "supervision": SUPERVISION.get(method, "")})  # fmt: skip
    return pd.DataFrame(rows)


def _group_acc(groups: pd.DataFrame) -> dict:
    """{class: {cue_on: acc, cue_off: acc}}, each the mean over trials."""
    out: dict = {}
    for (name, on), g in groups.groupby(["class_name", "cue_on"], sort=False):
        out.setdefault(name, {})["cue_on" if on else "cue_off"] = float(g["acc"].mean())
    return out


def worst_group_ci(groups: pd.DataFrame, seed: int, key: str) -> list | None:
    """The bootstrap interval of the mean over trials of the worst-group accuracy: each group's
    images (their correct / wrong counts, n x acc) resampled within the group and trial."""
    g = groups.reset_index(drop=True)
    n = g["n"].to_numpy(int)
    hits = np.rint(g["acc"].to_numpy(float) * n).astype(int)
    cell = np.repeat(np.arange(len(g)), n)
    correct = np.concatenate([np.r_[np.ones(h), np.zeros(k - h)] for h, k in zip(hits, n)] or [np.zeros(0)])
    trial = g["trial"].to_numpy(int)[cell]

    def worst(c, cells):
        acc = np.bincount(cells, c, len(g)) / np.maximum(np.bincount(cells, minlength=len(g)), 1)
        return float(np.mean([acc[trial_cells].min() for trial_cells in by_trial]))

    by_trial = [np.flatnonzero(g["trial"].to_numpy(int) == t) for t in np.unique(trial)]
    return bootstrap_ci([correct, cell], worst, seed, key, strata=cell)


def summarize_mitigation(table: pd.DataFrame, groups: pd.DataFrame, seed: int = 0) -> dict:
    """summary.json's numbers (module docstring) from the per-trial method and group tables; the
    bootstrap intervals (`<metric>_ci`) are seeded by `seed` (docs/methods.md#bootstrap-intervals)."""
    means = mitigation_table(table)
    models = {}
    for model, t in means.groupby("model", sort=False):
        by = t.set_index("method")
        erm, dfr = (float(by.loc[m, "worst_group_acc"]) if m in by.index else None for m in ("erm", "dfr"))
        methods = {}
        for method, r in by.iterrows():
            e = {"labels_needed": r["labels_needed"], "selected": r["selected"], "trials": int(r["trials"]),
                 "worst_group": r["worst_group"], **{m: float(r[m]) for m in METRICS}}  # fmt: skip
            if r["trials"] > 1:
                e["worst_group_acc_sem"] = float(r["worst_group_acc_sem"])
            if erm is not None:
                e["worst_group_gain_over_erm"] = e["worst_group_acc"] - erm
            if dfr is not None:
                e["worst_group_minus_dfr"] = e["worst_group_acc"] - dfr
            g = groups[(groups["model"] == model) & (groups["method"] == method)]
            e["worst_group_acc_ci"] = worst_group_ci(g, seed, f"worst-group-{model}-{method}")
            trials = table[(table["model"] == model) & (table["method"] == method)]
            e.update({f"{m}_ci": trials_ci(trials, m, seed, f"{m}-{model}-{method}") for m in ("acc", "gap")})
            methods[method] = {**e, "group_acc": _group_acc(g)}
        models[model] = {"methods": methods}
    suite = {method: {m: float(g[m].mean()) for m in ("acc", "gap", "worst_group_acc", "mean_group_acc")}
             for method, g in means.groupby("method", sort=False)}  # fmt: skip
    raises = {m: e["methods"]["dfr"]["worst_group_acc"] > e["methods"]["erm"]["worst_group_acc"]
              for m, e in models.items() if {"dfr", "erm"} <= set(e["methods"])}  # fmt: skip
    return {
        "audited_models": list(models),
        "method_order": [m for m in METHODS if m in suite],
        "supervision": {m: SUPERVISION[m] for m in METHODS if m in suite},
        "models": models,
        "suite": {"methods": suite},
        "acceptance": {"dfr_raises_worst_group": raises, "holds": bool(raises) and all(raises.values())},
    }


def mitigation_figure(summary: dict, out: str | os.PathLike, svg=None) -> None:
    """Per audited model, one bar per method: worst-group accuracy on the counterfactual twins (left,
    the mean accuracy on the test set as a tick) and the spurious gap on the test set (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, methods = summary["audited_models"], summary["method_order"]
    colours = dict(zip(METHODS, ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:purple")))
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.9 * len(models) + 3), 3.4))
    for j, method in enumerate(methods):
        x = np.arange(len(models)) + (j - (len(methods) - 1) / 2) * width
        e = [summary["models"][m]["methods"].get(method, {}) for m in models]
        wga = [100 * d.get("worst_group_acc", np.nan) for d in e]
        axes[0].bar(x, wga, width, color=colours.get(method, "k"), label=method)
        axes[0].scatter(x, [100 * d.get("acc", np.nan) for d in e], marker="_", color="black", s=60, zorder=3)
        axes[1].bar(x, [100 * d.get("gap", np.nan) for d in e], width, color=colours.get(method, "k"))
    for ax, label in zip(axes, ("worst-group accuracy (%) - tick: mean test accuracy", "spurious gap (points)")):
        ax.set_xticks(np.arange(len(models)), models, fontsize=7, rotation=15)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Mitigations on cached features: worst group (counterfactual twins) and spurious gap", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, svg)


def run_mitigation_summary(tables: dict, groups: dict, out, out_table, figure, svg=None) -> dict:
    """Stage `mitigation_summary`: summary.json (`out`), the mitigation table (`out_table`, .parquet
    + .csv) and the figure (PNG `figure`, SVG `svg`). `tables`, `groups`: model -> its tables."""
    table, group_table, settings = read_model_tables(tables, groups)
    summary = summarize_mitigation(table, group_table, seed=int(settings["dfr"]["seed"]))
    summary["inputs"] = {"tables_sha256": {m: sha256_file(p) for m, p in tables.items()},
                         "groups_sha256": {m: sha256_file(p) for m, p in groups.items()}, "settings": settings}  # fmt: skip
    write_table(mitigation_table(table), out_table, summary["inputs"])
    mitigation_figure(summary, figure, svg)
    write_json(out, summary)
    return summary
