"""The `spuriosity` target's headline numbers (Moayeri et al. 2023 on the planted-cue benchmark).

- ground truth: per cue class, the ROC-AUC with which spuriosity separates images showing the
  class's planted cue from those without it (`spuriosity_auc`), and per model the Pearson r of its
  class-wise ranked gaps against the counterfactual gaps of the models stage (cue on minus off on
  twin images: the gap the ranking should recover);
- per model: mean gap over ranked classes, over cue classes, over control classes (classes
  without a planted cue that the annotation still gave spurious features), the collision classes'
  gaps (a cue planted on two classes: spurious feature collision) and effective robustness;
- the mean pairwise r of class-wise gaps;
- corruptions: the mean accuracy change per corruption and feature label, and the mean r of two
  models' sensitivities;
- head tuning per model and method: gap and accuracy before and after (validation, and the
  held-out set when configured), averaged over trials;
- label-noise candidates of negative-gap classes and what core cropping did to them.

An image set without planted truth (real images: an index of image folders) has no cue, control
or collision classes, no planted cue to score the ranking against and no counterfactual twins:
those fields (`class_roles`, `spuriosity_auc`, `spuriosity_auc_mean`, the per-model
`cue_class_mean_gap`, `control_class_mean_gap`, `collision_class_gap`) are null, and
`not_computed` maps each to a one-line reason (also the counterfactual correlation, absent without
the models stage's summary, and the label-noise candidates' cue statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..config import Settings
from ..data.imagesets import ImageSet, has_planted_truth, planted_cue_masks
from ..errors import SpurlabError
from ..io import sha256_file, write_json
from ..io.tables import read_table, table_provenance
from ..stats import bootstrap_ci, mean_ci
from . import figures
from .label_noise import label_noise_summary
from .spuriosity import GAP_CI_METRICS, pearson_r, read_rankings, spuriosity_auc

NO_TRUTH = "the image set has no planted cues (real data)"


def _mean(values) -> float | None:
    v = [float(x) for x in values if x is not None and not np.isnan(x)]
    return float(np.mean(v)) if v else None


def _ci_columns(row: pd.Series, metric: str) -> list | None:
    """[low, high] from a table's `<metric>_ci_low` / `_ci_high` columns (None where absent or NaN)."""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    ok = low is not None and high is not None and np.isfinite(low) and np.isfinite(high)
    return [float(low), float(high)] if ok else None


def class_roles(planted: dict[str, list[str]], class_names: list[str]) -> dict[str, list[str]]:
    """cue classes (a planted cue), controls (none), collision classes (a cue shared with another class)."""
    owners: dict[str, list[str]] = {}
    for c, cues in planted.items():
        for q in cues:
            owners.setdefault(q, []).append(c)
    return {
        "cue": [c for c in class_names if c in planted],
        "control": [c for c in class_names if c not in planted],
        "collision": [c for c in class_names if any(len(owners[q]) > 1 for q in planted.get(c, []))],
    }


def gap_truth_correlation(gaps: pd.DataFrame, counterfactual: dict[str, dict[str, float]]) -> dict:
    """Per model: Pearson r over classes between the ranked gap and the counterfactual gap."""
    out = {}
    for model, g in gaps.groupby("model"):
        if counterfactual.get(model):
            truth = [counterfactual[model].get(n, np.nan) for n in g["class_name"]]
            r = pearson_r(g["gap"], truth)
            if not np.isnan(r):
                out[model] = r
    return out


def _mean_r(pairs) -> float:
    r = [pearson_r(a, b) for a, b in pairs]
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def gap_correlation_ci(gaps: pd.DataFrame, seed: int) -> list | None:
    """The bootstrap interval of `gap_correlation_mean` (the mean over model pairs of Pearson r of
    their class gaps): the classes resampled, each with every model's gap; resamples on which no
    pair's r is defined (one distinct class) left out (docs/methods.md#bootstrap-intervals)."""
    wide = gaps.pivot(index="class_index", columns="model", values="gap").to_numpy(float)
    pairs = list(combinations(range(wide.shape[1]), 2))
    if not pairs:
        return None
    return bootstrap_ci([wide], lambda w: _mean_r((w[:, a], w[:, b]) for a, b in pairs), seed, "gap-correlation",
                        drop_undefined=True)  # fmt: skip


def gap_truth_ci(gaps: pd.DataFrame, counterfactual: dict, models: list[str], seed: int) -> list | None:
    """The bootstrap interval of `gap_vs_counterfactual_r_mean` over `models` (those with an r): the
    classes resampled, each with every model's ranked and counterfactual gap."""
    if not models:
        return None
    wide = gaps.pivot(index="class_name", columns="model", values="gap")[models]
    truth = np.array([[counterfactual[m].get(c, np.nan) for m in models] for c in wide.index], float)

    def mean_r(g, t):
        return _mean_r((g[:, j], t[:, j]) for j in range(len(models)))

    return bootstrap_ci([wide.to_numpy(float), truth], mean_r, seed, "gap-vs-counterfactual", drop_undefined=True)


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged, as sklearn's roc_auc_score); NaN when one side is empty."""
    from scipy.stats import rankdata

    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if not n1 or not n0:
        return float("nan")
    return float((rankdata(scores)[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_mean_ci(known: pd.DataFrame, classes: list[int], seed: int) -> list | None:
    """The bootstrap interval of the mean over `classes` of the spuriosity AUC: each class's images
    with and without its cue resampled within the class and that side (both sides keep their size)."""
    r = known[known["class_index"].isin(classes) & known["spuriosity"].notna()]
    if r.empty:
        return None
    score, cls, cue = r["spuriosity"].to_numpy(float), r["class_index"].to_numpy(int), r["cue_present"].to_numpy(bool)

    def mean_auc(s, c, q):
        return float(np.mean([_auc(s[c == k], q[c == k]) for k in np.unique(c)]))

    return bootstrap_ci([score, cls, cue], mean_auc, seed, "spuriosity-auc", strata=cls * 2 + cue)


def trials_ci(trials: pd.DataFrame, metric: str, seed: int, key: str) -> list | None:
    """The interval of a mean over trials: the table's `<metric>_trials_ci_low` / `_high` columns
    (images resampled within trials, and trials; `measure.spuriosity.trial_gap_cis`) where it has
    them; else, for a table without them, one trial: its interval over images (`<metric>_ci_*`),
    several: trials resampled (docs/methods.md#bootstrap-intervals)."""
    if not len(trials):
        return None
    if f"{metric}_trials_ci_low" in trials:
        return _ci_columns(trials.iloc[0], f"{metric}_trials")
    if len(trials) > 1:
        return mean_ci(trials[metric], seed, key)
    return _ci_columns(trials.iloc[0], metric)


def _trial_cis(g: pd.DataFrame, seed: int, key: str) -> dict:
    """Intervals (`<gap|acc>_<before|after>_ci`) of one method's validation rows."""
    val = g[g["split"] == "val"]
    return {f"{c}_{w}_ci": trials_ci(val[val["when"] == w], c, seed, f"tuning-{key}-{c}-{w}")
            for c in ("gap", "acc") for w in ("before", "after")}  # fmt: skip


def summarize_tuning(table: pd.DataFrame, seed: int = 0) -> dict:
    """{method: means over trials of gap/acc before and after on val and (test_*) on the held-out
    split when there is one, epochs run, the relative gap reduction, and the per-trial val gaps}:
    one model's head-tuning table (`spurlab.mitigate.head_tuning`) summarised."""
    out = {}
    for method, g in table.groupby("method", sort=False):
        e = {}
        for split, prefix in (("val", ""), ("test", "test_")):
            means = g[g["split"] == split].groupby("when")[["gap", "acc"]].mean()
            e.update({f"{prefix}{c}_{w}": float(means.loc[w, c]) for c in ("gap", "acc") for w in means.index})
        after = g[(g["split"] == "val") & (g["when"] == "after")]
        e["epochs"] = float(after["epochs"].mean())
        e["gap_reduction"] = 1 - e["gap_after"] / e["gap_before"] if e["gap_before"] > 0 else None
        e["gap_after_trials"] = after["gap"].tolist()
        e.update(_trial_cis(g, seed, f"{g['model'].iloc[0] if 'model' in g else ''}-{method}"))
        out[method] = e
    return out


def tuning_summary(tables: dict[str, pd.DataFrame], seed: int = 0) -> dict:
    """{model: {method: gap/acc before and after, ...}} (see `summarize_tuning`)."""
    return {model: summarize_tuning(t, seed) for model, t in tables.items()}


def tuning_acceptance(
    tuning: dict, audited: list[str], gap_target: float, max_cost_points: float = 3.0, min_cut: float = 0.5
) -> dict:
    """Moayeri et al.'s tuning claim, judged on the audited models (the discovery model ranks, the
    audited ones are tuned): for each whose validation gap is above the stopping target,
    low-spuriosity tuning succeeds at <= `max_cost_points` of accuracy, and the random baseline on
    the same budget does not. Success is a cut of the gap by >= `min_cut` *or* a gap brought under
    the stopping target: tuning stops there, so a gap that starts below 2 x target cannot be halved
    by the rule itself. `holds` is None for a gap already at the target."""

    def succeeds(e: dict | None) -> bool:
        if not e or e.get("gap_reduction") is None:
            return False
        return e["gap_reduction"] >= min_cut or e["gap_after"] < gap_target

    out = {}
    for m in audited:
        low, rnd = tuning.get(m, {}).get("low_spuriosity"), tuning.get(m, {}).get("random")
        if not low:
            continue
        cost = 100 * (low["acc_before"] - low["acc_after"])
        e = {"gap_before": low["gap_before"], "gap_after": low["gap_after"], "gap_before_ci": low.get("gap_before_ci"),
             "gap_after_ci": low.get("gap_after_ci"), "cut": low["gap_reduction"],
             "accuracy_cost_points": cost, "random_cut": rnd["gap_reduction"] if rnd else None,
             "random_gap_after": rnd["gap_after"] if rnd else None}  # fmt: skip
        if low["gap_before"] <= gap_target:
            e["holds"] = None
            e["why"] = f"gap {low['gap_before']:.3f} already at or below the stopping target {gap_target:g}"
        else:
            e["holds"] = bool(succeeds(low) and cost <= max_cost_points and not succeeds(rnd))
        out[m] = e
    return out


def corruption_summary(tables: dict[str, pd.DataFrame], correlations: pd.DataFrame) -> dict:
    per_model = {}
    for model, t in tables.items():
        per_model[model] = {
            f"{c}/{label}": float(g["delta"].mean()) for (c, label), g in t.groupby(["corruption", "label"])
        }
    overall = correlations[correlations["corruption"] == "all"]["pearson_r"] if len(correlations) else pd.Series([])
    return {"mean_delta": per_model, "sensitivity_correlation_mean": _mean(overall)}


def spuriosity_summary(rankings: pd.DataFrame, gaps: pd.DataFrame, suite: pd.DataFrame, correlations: pd.DataFrame,
                       planted: dict[str, list[str]], class_names: list[str], gap_set: str,
                       counterfactual: dict[str, dict[str, float]] | None = None,
                       planted_truth: bool | None = None, seed: int = 0) -> dict:  # fmt: skip
    """The summary's ranking and gap sections (see the module docstring). `planted_truth`: whether
    the gap set carries planted truth (`data.imagesets.has_planted_truth`; default: `planted` is not
    empty); without it the fields scored against planted cues are null and named in `not_computed`."""
    truth = bool(planted) if planted_truth is None else bool(planted_truth)
    roles = class_roles(planted, class_names) if truth else {"cue": [], "control": [], "collision": []}
    auc, auc_ci = {}, None
    for set_name, r in rankings.groupby("set", sort=False):
        known = r[r["cue_present"].notna()]
        if known.empty:
            continue
        per_class = spuriosity_auc(known["spuriosity"].to_numpy(float), known["class_index"].to_numpy(),
                                   known["cue_present"].to_numpy(float))  # fmt: skip
        auc[set_name] = {class_names[c]: v for c, v in per_class.items()}
        if set_name == gap_set and truth:
            auc_ci = auc_mean_ci(known, [class_names.index(c) for c in roles["cue"]], seed)
    models = {}
    for model, g in gaps.groupby("model", sort=False):
        by_name = dict(zip(g["class_name"], g["gap"]))
        class_ci = {r["class_name"]: _ci_columns(r, "gap") for _, r in g.iterrows()}
        row = suite.set_index("model").loc[model]
        models[model] = {
            "acc": float(row["acc"]), "acc_high": float(row["acc_high"]), "acc_low": float(row["acc_low"]),
            "mean_gap": float(row["mean_gap"]),
            **{f"{m}_ci": _ci_columns(row, m) for m in GAP_CI_METRICS},
            "cue_class_mean_gap": _mean(by_name.get(c) for c in roles["cue"]) if truth else None,
            "control_class_mean_gap": _mean(by_name.get(c) for c in roles["control"]) if truth else None,
            "collision_class_gap": {c: by_name[c] for c in roles["collision"] if c in by_name} if truth else None,
            "collision_class_gap_ci": {c: class_ci[c] for c in roles["collision"] if c in by_name} if truth else None,
            "effective_robustness": None if np.isnan(row["effective_robustness"]) else float(row["effective_robustness"]),
            "effective_robustness_ci": _ci_columns(row, "effective_robustness"),
            "class_gap": by_name,
            "class_gap_ci": class_ci,
        }  # fmt: skip
    negative = gaps.groupby("class_name")["gap"].mean()
    summary = {
        "gap_set": gap_set,
        "k": int(gaps["k"].max()) if len(gaps) else None,
        "ranked_classes": sorted(gaps["class_name"].unique().tolist()),
        "class_roles": roles if truth else None,
        "spuriosity_auc": auc if truth else None,
        "spuriosity_auc_mean": _mean(auc.get(gap_set, {}).get(c) for c in roles["cue"]) if truth else None,
        "spuriosity_auc_mean_ci": auc_ci,
        "models": models,
        "gap_correlation_mean": _mean(correlations["pearson_r"]) if len(correlations) else None,
        "gap_correlation_mean_ci": gap_correlation_ci(gaps, seed) if len(correlations) else None,
        "gap_correlations": correlations.to_dict(orient="records"),
        "negative_gap_classes": sorted(negative[negative < 0].index.tolist()),
    }
    not_computed = {}
    if not truth:
        for key in (
            "class_roles",
            "spuriosity_auc",
            "spuriosity_auc_mean",
            "models/*/cue_class_mean_gap",
            "models/*/control_class_mean_gap",
            "models/*/collision_class_gap",
        ):
            not_computed[key] = NO_TRUTH
    if counterfactual:
        r = gap_truth_correlation(gaps, counterfactual)
        summary["gap_vs_counterfactual_r"] = r
        summary["gap_vs_counterfactual_r_mean"] = _mean(r.values())
        summary["gap_vs_counterfactual_r_mean_ci"] = gap_truth_ci(gaps, counterfactual, list(r), seed)
    else:
        not_computed["gap_vs_counterfactual_r"] = (
            NO_TRUTH if not truth else "no counterfactual gaps given (the models stage's summary)"
        )
    summary["not_computed"] = not_computed
    return summary


@dataclass(frozen=True)
class SpuriositySummarySettings(Settings):
    """Stage `spuriosity_summary`: the model that ranked the images (salient.model; every other
    model is audited) and head tuning's stopping target, which `acceptance` judges tuning by."""

    KEYS = {"discovery_model": "salient.model", "gap_target": "spuriosity.tuning.gap_target", "seed": "seed"}
    discovery_model: str | None = None
    gap_target: float = 0.05
    seed: int = 0  # the bootstrap intervals' (docs/methods.md#bootstrap-intervals)


def run_spuriosity_summary(imageset_path, rankings_path, gaps_path, models_path, correlations_path,
                           corruption_paths, tuning_paths, label_noise_path, models_summary_path, out,
                           gaps_figure, tuning_figure, lightweight_path=None,
                           settings: SpuriositySummarySettings = SpuriositySummarySettings()) -> dict:  # fmt: skip
    """Stage `spuriosity_summary`: summary.json and the gap and tuning figures. The settings'
    `discovery_model` ranks the images; every other model is audited (its tuning is what
    `acceptance` judges)."""
    discovery_model, gap_target = settings.discovery_model, settings.gap_target
    import json
    from pathlib import Path

    from .corruptions import sensitivity_correlation

    rankings = read_rankings(rankings_path)
    expect = {"rankings_sha256": sha256_file(rankings_path)}
    gaps, suite, corr = (read_table(p, expect=expect) for p in (gaps_path, models_path, correlations_path))
    imageset = ImageSet(imageset_path)
    names, planted = imageset.class_names, planted_cue_masks(imageset)
    counterfactual = None
    if models_summary_path:
        ms = json.loads(Path(models_summary_path).read_text())
        counterfactual = {m: e["counterfactual_gap"] for m, e in ms["models"].items()}
    gap_set = table_provenance(gaps_path)["gap_set"]
    truth = has_planted_truth(imageset)
    summary = spuriosity_summary(
        rankings,
        gaps,
        suite=suite,
        correlations=corr,
        planted=planted,
        class_names=names,
        gap_set=gap_set,
        counterfactual=counterfactual,
        planted_truth=truth,
        seed=settings.seed,
    )
    corruption = {}
    same_annotations = {"annotations_sha256": table_provenance(rankings_path)["annotations_sha256"]}
    for p in corruption_paths:
        t = read_table(p, expect=same_annotations)
        corruption[str(t["model"].iloc[0])] = t
    summary["corruptions"] = corruption_summary(corruption, sensitivity_correlation(corruption))
    tuning = {}
    for p in tuning_paths:
        t = read_table(p, expect=expect)
        if t.empty:
            raise SpurlabError(f"{p}: empty tuning table")
        tuning[str(t["model"].iloc[0])] = t
    summary["tuning"] = tuning_summary(tuning, settings.seed)
    summary["discovery_model"] = discovery_model
    summary["audited_models"] = [m for m in summary["models"] if m != discovery_model]
    collision = {m: summary["models"][m]["collision_class_gap"] for m in summary["audited_models"]}
    summary["acceptance"] = {
        "tuning": tuning_acceptance(summary["tuning"], summary["audited_models"], gap_target),
        # a spurious feature shared by two classes gives one of them a negative gap (Moayeri et al.'s
        # car wheel): some collision class of the model has one (a class that is not ranked has none)
        "collision_gap_negative": ({m: any(v < 0 for v in g.values()) for m, g in collision.items()}
                                   if truth else None),
    }  # fmt: skip
    noise = read_table(label_noise_path, expect=expect)
    summary["label_noise"] = label_noise_summary(noise, list(summary["models"]), names)
    if not truth and summary["label_noise"]:
        summary["not_computed"]["label_noise/*/cue_present, cue_removed_by_crop"] = NO_TRUTH
    if lightweight_path:
        summary["lightweight"] = json.loads(Path(lightweight_path).read_text())
    summary["inputs"] = {Path(p).name: sha256_file(p) for p in
                         [rankings_path, gaps_path, models_path, correlations_path, label_noise_path,
                          *corruption_paths, *tuning_paths]}  # fmt: skip
    figures.gap_figure(suite, gaps, gaps_figure)
    figures.tuning_figure(summary["tuning"], tuning_figure)
    write_json(out, summary)
    return summary
