"""The `salient` target's headline numbers (Singla & Feizi 2022 on the planted-cue benchmark).

- annotation: pairs, spurious pairs, the automatic annotator's precision/recall against planted
  truth and the fraction of planted (class, cue) pairs recovered (docs/methods.md#annotation); for human answers
  also the pairs left unannotated or undecided and how far the answers file covers the exported
  pairs (the annotations table's provenance, `discover.annotate.human_annotations`);
- noise: per model and sigma, core and spurious accuracy over the classes that have both spurious
  and core features (the paper's acc(C) averages over classes with a spurious feature; averaging
  both over the same classes keeps the two comparable);
- the "drake" comparison per model: on cue classes (without planted truth: on every class with
  both kinds of feature, as the paper), the accuracy drop from noise on spurious regions against
  the drop from noise on core regions, at each sigma, and at the model's onset sigma
  (`drake_onset`: the smallest sigma at which either drop is measurably above zero);
- l2-matched drops (appendix L): for each spurious/core feature pair of a class, the feature whose
  noise has the smaller mean L2 norm at sigma 0.25 gets the smallest sigma in 0.30..0.60 whose
  L2 norm reaches the other's; the drops are compared at those sigmas.

Data without planted truth (real images: an index of image folders, no masks) has no annotator
score, no planted cue to recover and no cue classes: those fields (the `auto_annotator*`
scores, `planted_cues_recovered`, `planted_cue_recovery`, `cue_classes_with_both`) are
null and `not_computed` maps each to a one-line reason. `n_annotated` counts the pairs labelled
spurious or core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Settings
from ..data.imagesets import ImageSet, has_planted_truth
from ..discover.auto_annotate import auto_annotations, localises_cue, score_against_truth, switched_off_truth
from ..discover.heatmap import heatmap
from ..discover.subsets_file import STAT_COLUMNS, SalientSubsets
from ..errors import SpurlabError
from ..io import sha256_file, write_json
from ..io.tables import read_table, table_provenance
from ..stats import mean_ci
from .figures import feature_grid, noise_curves

HEADLINE_SIGMA = 0.25
ANNOTATED = ("spurious", "core")
NO_TRUTH = "the image set has no planted cues (real data)"
NO_MASKS = "the image set has no object or cue masks to score against (real data)"


def _overall(noise: pd.DataFrame, classes) -> dict:
    out = {}
    consolidated = noise["measure"].isin(["core_acc", "spurious_acc"]) & noise["class_index"].isin(classes)
    for sigma, g in noise[consolidated].groupby("sigma"):
        core = g[g["measure"] == "core_acc"].set_index("class_index")["acc"]
        spur = g[g["measure"] == "spurious_acc"].set_index("class_index")["acc"]
        out[f"{sigma:g}"] = {"core_acc": float(core.mean()), "spurious_acc": float(spur.mean()), "n_classes": len(core)}
    return out


def _per_class(noise: pd.DataFrame, classes, names: dict, sigma: float) -> dict:
    """Per class: clean accuracy on DS(i) and DC(i), and core/spurious accuracy at `sigma`."""
    t = noise[noise["measure"].isin(["core_acc", "spurious_acc"]) & noise["class_index"].isin(classes)]
    out = {}
    for i, g in t.groupby("class_index"):
        acc = g.set_index(["measure", "sigma"])["acc"]
        out[names[i]] = {
            "clean_DS": float(acc.get(("core_acc", 0.0), np.nan)),
            "clean_DC": float(acc.get(("spurious_acc", 0.0), np.nan)),
            "core_acc": float(acc.get(("core_acc", sigma), np.nan)),
            "spurious_acc": float(acc.get(("spurious_acc", sigma), np.nan)),
        }
    return out


def drop_ci(rows: pd.DataFrame, seed: int, key: str) -> list | None:
    """The bootstrap interval of the mean over classes of the accuracy drops of noised `rows` (one
    per class): each class's images resampled within the class, an image's drop (clean minus noisy
    correct: 1, 0 or -1) from the rows' paired counts `n_lost`, `n_gained` (None without them)."""
    if "n_lost" not in rows or (rows["n_lost"] < 0).any():
        return None
    drops, cls = [], []
    for r in rows.itertuples():
        lost, gained = int(r.n_lost), int(r.n_gained)
        drops.append(np.r_[np.ones(lost), -np.ones(gained), np.zeros(int(r.n) - lost - gained)])
        cls.append(np.full(int(r.n), int(r.class_index)))
    return mean_ci(np.concatenate(drops), seed, key, strata=np.concatenate(cls)) if drops else None


def drake_comparison(noise: pd.DataFrame, classes, seed: int = 0) -> dict:
    """Per sigma: mean over `classes` of the drops (clean - noisy) for spurious and core noise,
    with their bootstrap intervals (`drop_ci`)."""
    sub = noise[noise["class_index"].isin(classes) & noise["measure"].isin(["core_acc", "spurious_acc"])]
    model = str(noise["model"].iloc[0]) if "model" in noise and len(noise) else ""
    out = {}
    clean = sub[sub["sigma"] == 0].set_index(["class_index", "measure"])["acc"]
    for sigma, g_rows in sub[sub["sigma"] > 0].groupby("sigma"):
        g = g_rows.set_index(["class_index", "measure"])["acc"]
        drop = (clean - g).unstack("measure")
        if drop.empty or "core_acc" not in drop or "spurious_acc" not in drop:
            continue
        d_spur, d_core = drop["core_acc"], drop["spurious_acc"]  # core_acc = accuracy under spurious noise
        rows = {m: g_rows[g_rows["measure"] == m] for m in ("core_acc", "spurious_acc")}
        out[f"{sigma:g}"] = {
            "drop_spurious_noise": float(d_spur.mean()),
            "drop_spurious_noise_ci": drop_ci(rows["core_acc"], seed, f"drop-spurious-{model}-{sigma:g}"),
            "drop_core_noise": float(d_core.mean()),
            "drop_core_noise_ci": drop_ci(rows["spurious_acc"], seed, f"drop-core-{model}-{sigma:g}"),
            "spurious_exceeds_core": bool(d_spur.mean() > d_core.mean()),
            "classes_spurious_exceeds_core": int((d_spur > d_core).sum()),
            "n_classes": int(len(drop)),
        }
    return out


def _measurably_positive(entry: dict, key: str) -> bool:
    """Is the drop `key` above zero: its 95% interval's lower end where it has one, else the drop."""
    ci = entry.get(f"{key}_ci")
    return ci[0] > 0 if ci else entry[key] > 0


def drake_onset(by_sigma: dict) -> dict | None:
    """One model's drake comparison (`drake_comparison`) at its onset sigma: the smallest swept
    sigma at which noise measurably costs accuracy in either region (`_measurably_positive`),
    as {"sigma", and that sigma's entry}; None when no sigma does.

    Why not one sigma for every model: past the onset the drops saturate. A model that small
    noise already breaks loses nearly every image under either noise, and the comparison then
    measures which region is larger, not which one the model leans on
    (docs/methods.md#noise-corruption)."""
    for key in sorted(by_sigma, key=float):
        entry = by_sigma[key]
        if _measurably_positive(entry, "drop_spurious_noise") or _measurably_positive(entry, "drop_core_noise"):
            return {"sigma": float(key), **entry}
    return None


def l2_matched(noise: pd.DataFrame, sigma: float = HEADLINE_SIGMA, grid=None) -> dict:
    """Appendix L: spurious vs core feature drops at matched mean L2 perturbation."""
    feat = noise[noise["measure"] == "feature"]
    grid = sorted(feat["sigma"].unique()) if grid is None else grid
    grid = [s for s in grid if 0.30 - 1e-9 <= s <= 0.60 + 1e-9]
    acc = feat.set_index(["class_index", "feature_index", "sigma"])["acc"]
    l2 = feat.set_index(["class_index", "feature_index", "sigma"])["l2_mean"]
    rows, unmatched = [], 0
    for i, g in feat.groupby("class_index"):
        labels = g.drop_duplicates("feature_index").set_index("feature_index")["label"]
        for js in labels.index[labels == "spurious"]:
            for jc in labels.index[labels == "core"]:
                ls, lc = l2[(i, js, sigma)], l2[(i, jc, sigma)]
                low, target = (jc, ls) if lc < ls else (js, lc)
                s_low = next((s for s in grid if l2[(i, low, s)] >= target), None)
                if s_low is None:
                    unmatched += 1
                    continue
                s_s, s_c = (sigma, s_low) if low == jc else (s_low, sigma)
                drop_s = acc[(i, js, 0.0)] - acc[(i, js, s_s)]
                drop_c = acc[(i, jc, 0.0)] - acc[(i, jc, s_c)]
                rows.append((i, js, jc, s_s, s_c, drop_s, drop_c))
    if not rows:
        return {"n_pairs": 0, "unmatched": unmatched}
    r = pd.DataFrame(rows, columns=["class", "spurious", "core", "sigma_s", "sigma_c", "drop_s", "drop_c"])
    return {
        "n_pairs": len(r), "unmatched": unmatched,
        "mean_drop_spurious": float(r["drop_s"].mean()), "mean_drop_core": float(r["drop_c"].mean()),
        "fraction_spurious_exceeds_core": float((r["drop_s"] > r["drop_c"]).mean()),
    }  # fmt: skip


def classes_with_large_gap(noise: pd.DataFrame, sigma: float = HEADLINE_SIGMA, gap: float = 0.2) -> list[int]:
    """The paper's count: classes where some spurious feature's drop exceeds some core feature's by `gap`."""
    feat = noise[noise["measure"] == "feature"]
    clean = feat[feat["sigma"] == 0].set_index(["class_index", "feature_index"])["acc"]
    noisy = feat[np.isclose(feat["sigma"], sigma)].set_index(["class_index", "feature_index"])
    drop = (clean - noisy["acc"]).rename("drop").to_frame().join(noisy["label"])
    out = []
    for i, g in drop.groupby(level="class_index"):
        s, c = g[g["label"] == "spurious"]["drop"], g[g["label"] == "core"]["drop"]
        if len(s) and len(c) and s.max() - c.min() >= gap:
            out.append(int(i))
    return out


def salient_summary(pairs: pd.DataFrame, annotations: pd.DataFrame, noise: dict[str, pd.DataFrame],
                    planted: dict[str, list[str]], auto: dict | None, erm_models: list[str],
                    planted_truth: bool | None = None, headline_sigma: float = HEADLINE_SIGMA,
                    seed: int = 0) -> dict:  # fmt: skip
    """The summary (module docstring). `auto`: the automatic annotator scored against the planted
    truth (None without masks); `planted_truth`: whether the image set has planted cues
    (`data.imagesets.has_planted_truth`; default: `planted` is not empty). Fields that need what is
    missing are null and named, with a one-line reason, in `not_computed`. The headline numbers
    are at `headline_sigma`, or at the smallest swept sigma above 0 when the tables lack it; `seed`
    seeds the drops' bootstrap intervals (docs/methods.md#bootstrap-intervals)."""
    truth = bool(planted) if planted_truth is None else bool(planted_truth)
    names = dict(zip(pairs["class"], pairs["class_name"]))
    swept = sorted({float(x) for t in noise.values() for x in t.loc[t["measure"] != "feature", "sigma"]} - {0.0})
    sigma = headline_sigma if headline_sigma in swept or not swept else swept[0]
    labels = annotations.groupby("class_index")["label"]
    both = sorted(i for i, g in labels if (g == "spurious").any() and (g == "core").any())
    cue_classes = sorted(i for i in both if names[i] in planted)
    drake = {m: drake_comparison(t, cue_classes if truth else both, seed) for m, t in noise.items()}
    summary = {
        "n_pairs": int(len(annotations)),
        "n_spurious": int((annotations["label"] == "spurious").sum()),
        # human answers only: pairs nobody answered, pairs whose answers reach no majority
        "n_unannotated": int((annotations["label"] == "unannotated").sum()),
        "n_undecided": int((annotations["label"] == "undecided").sum()),
        "n_classes_with_spurious": int(annotations.loc[annotations["label"] == "spurious", "class_index"].nunique()),
        "annotation_source": str(annotations["source"].iloc[0]) if len(annotations) else None,
        "auto_annotator_precision": auto["precision"] if auto else None,
        "auto_annotator_precision_ci": auto.get("precision_ci") if auto else None,
        "auto_annotator_recall": auto["recall"] if auto else None,
        "auto_annotator_recall_ci": auto.get("recall_ci") if auto else None,
        "auto_annotator_precision_presence_only": auto["precision_presence_only"] if auto else None,
        "auto_annotator_recall_presence_only": auto["recall_presence_only"] if auto else None,
        "planted_cues_recovered": auto["planted_cues_recovered"] if auto else None,
        "planted_cues_recovered_ci": auto.get("planted_cues_recovered_ci") if auto else None,
        "planted_cue_recovery": auto["recovered"] if auto else None,
        "classes_with_both": [names[i] for i in both],
        "cue_classes_with_both": [names[i] for i in cue_classes] if truth else None,
        "noise": {m: _overall(t, both) for m, t in noise.items()},
        # on the benchmark its cue classes; without planted cues every class with both kinds (the paper's)
        "drake": drake,
        "drake_onset": {m: drake_onset(d) for m, d in drake.items()},
        "drake_classes": "cue classes with both" if truth else "classes with both",
        "headline_sigma": sigma,
        "l2_matched": {m: l2_matched(t, sigma) for m, t in noise.items()},
        "classes_spurious_drop_20pt_above_core": {
            m: [names[i] for i in classes_with_large_gap(t, sigma)] for m, t in noise.items()
        },
        "per_class": {m: _per_class(t, both, names, sigma) for m, t in noise.items()},
        "erm_models": erm_models,
    }
    if auto:
        summary["auto_annotator"] = {k: v for k, v in auto.items() if k not in ("recovered", "truth")}
    # counted as annotated: spurious or core (not unannotated, undecided)
    summary["n_annotated"] = int(annotations["label"].isin(ANNOTATED).sum())
    not_computed = {}
    if not auto:
        for key in ("auto_annotator_precision", "auto_annotator_recall", "auto_annotator_precision_presence_only",
                    "auto_annotator_recall_presence_only", "planted_cues_recovered", "planted_cue_recovery",
                    "auto_annotator"):  # fmt: skip
            not_computed[key] = NO_MASKS
    if not truth:
        not_computed["cue_classes_with_both"] = NO_TRUTH
    summary["not_computed"] = not_computed
    return summary


@dataclass(frozen=True)
class SalientSummarySettings(Settings):
    """Stage `salient_summary` (config `salient.annotation`): the automatic annotator's criterion
    and threshold, scored against the planted truth; the sigma of the headline numbers
    (salient.noise.headline_sigma); the seed of their bootstrap intervals (top-level `seed`)."""

    SECTION = "salient.annotation"
    KEYS = {"headline_sigma": "salient.noise.headline_sigma", "seed": "seed"}
    auto_criterion: str = "hot"
    auto_threshold: float = 0.5
    headline_sigma: float = HEADLINE_SIGMA
    seed: int = 0


def run_salient_summary(imageset_path, subsets_path, annotations_path, noise_paths, out, figure, grid_figure,
                        features_path, model_dir, settings: SalientSummarySettings = SalientSummarySettings()) -> dict:  # fmt: skip
    """Stage `salient_summary`: summary.json, the noise-curve figure and the feature grid.
    `features_path` is `model_dir`'s (salient.model's) feature cache of the image set: the planted
    truth's second kind (`auto_annotate.cue_switched_off`) is measured on it."""
    from pathlib import Path

    subsets_sha, annotations_sha = sha256_file(subsets_path), sha256_file(annotations_path)
    annotations = read_table(annotations_path, expect={"subsets_sha256": subsets_sha})
    noise, erm = {}, []
    for path in noise_paths:
        t = read_table(path, expect={"subsets_sha256": subsets_sha, "annotations_sha256": annotations_sha})
        if t.empty:
            raise SpurlabError(f"{path}: empty noise table")
        name = str(t["model"].iloc[0])
        noise[name] = t
        if not table_provenance(path)["robust"]:
            erm.append(name)
    imageset = ImageSet(imageset_path)
    with SalientSubsets(subsets_path) as subsets:
        if subsets.attrs["imageset_sha256"] != imageset.sha256:
            raise SpurlabError(f"{subsets_path}: built from another image set than {imageset_path}; rebuild it")
        pairs, planted = subsets.pair_table(require=STAT_COLUMNS), subsets.planted_cues
        has_masks = bool(subsets.attrs["has_masks"])
        auto, truth = None, [None] * len(pairs)
        if has_masks:
            off = switched_off_truth(pairs, imageset, features_path, model_dir)
            auto_table = auto_annotations(pairs, settings.auto_criterion, settings.auto_threshold)
            auto = score_against_truth(auto_table, pairs, planted, off, seed=settings.seed, key="salient-annotator")
            used = score_against_truth(annotations, pairs, planted, off, seed=settings.seed, key="salient-annotations")
            for k in ("planted_cues_recovered", "planted_cues_recovered_ci", "recovered"):
                auto[k] = used[k]
            truth = ["cue" if shown else (f"no {q}" if isinstance(q, str) else "")
                     for shown, q in zip(localises_cue(pairs), off or [None] * len(pairs))]  # fmt: skip
        label_of = {(r.class_index, r.feature_index): r.label for r in annotations.itertuples()}
        grid = []
        for p, row in pairs.iterrows():
            m = subsets.members(p)
            if not len(m["row"]):
                continue
            img = imageset.images(int(m["row"][0]))
            grid.append({"class_name": row["class_name"], "feature": int(row["feature"]), "rank": int(row["rank"]),
                         "label": label_of.get((row["class"], row["feature"]), "unannotated"),
                         "truth": truth[p], "heatmap": heatmap(img, m["nam"][0])})  # fmt: skip
    summary = salient_summary(
        pairs,
        annotations,
        noise=noise,
        planted=planted,
        auto=auto,
        erm_models=erm,
        planted_truth=has_planted_truth(imageset),
        headline_sigma=settings.headline_sigma,
        seed=settings.seed,
    )
    if summary["annotation_source"] == "human":
        summary["coverage"] = table_provenance(annotations_path).get("coverage")
    summary["inputs"] = {"subsets_sha256": subsets_sha, "annotations_sha256": annotations_sha,
                         "features_sha256": sha256_file(features_path),
                         "noise_sha256": {Path(p).name: sha256_file(p) for p in noise_paths}}  # fmt: skip
    names = dict(zip(pairs["class"], pairs["class_name"]))
    both = [i for i, n in names.items() if n in summary["classes_with_both"]]
    noise_curves(noise, both, names, figure)
    feature_grid(grid, grid_figure)
    write_json(out, summary)
    return summary
