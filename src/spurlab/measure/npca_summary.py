"""The `npca` target's headline numbers (Neuhaus et al. 2023): results/npca/summary.json.

- `planted_cues_recovered`: fraction of planted (class, cue) pairs of the benchmark recovered by
  the top-10 neural PCA components (`npca`) and by the top-5 / top-10 neurons of Salient ImageNet
  (`neurons_top5`, `neurons_top10`), all judged by the same annotator on the same images
  (`auto_annotate.score_against_truth`: some feature of the class annotated spurious localises the
  cue), with its bootstrap interval over the planted (class, cue) pairs per kind
  (`planted_cues_recovered_ci`: {kind: [low, high]});
- `annotator_precision` per kind against the planted truth (a planted cue shown, or switched off
  by a planted background cue), with its interval over the pairs (`annotator_precision_ci`),
  `annotator_precision_presence_only` against the first kind alone;
- `harmfulness`: the components validated harmful (they alone trigger the class), which SpuFix
  removes, their harm rates, and the fraction of them that are truly spurious;
- `retrieval_precision`: fraction of cue-only retrieved images that show the class's cue and not
  its object, with its bootstrap interval over the retrieved images (`retrieval_precision_ci`);
- per model: spurious AUC / AP before and after SpuFix (on the `cue_only` split; the retrieved set
  under `retrieved_*`), the same AUC over the classes SpuFix repairs (`repaired_classes`,
  `spurious_auc_repaired_*`, with the intervals `npca_spufix` computed over the images of those
  classes) and SpuFix's reach on each of them (`spufix_reach`), test accuracy before and after;
  `transfer_invariant_max_abs_err`;
  `cue_only_negatives` says where the cue-only negatives came from (`planted_cues`: the generated
  set's cue flags; `folder_labels`: a cue-only folder set's labels);
- `n_components` (all selected), `n_components_annotated` (labelled spurious or core: not
  `unannotated` nor `undecided`), `component_labels` (count per label).

Data without planted truth (real images: no masks, so the pair table's region statistics are NaN)
gives null for every field scored against it (recovery, annotator precision, the harmful
components' precision, retrieval precision, the recovery acceptance), and `not_computed` maps
each such field to a one-line reason. With planted truth `not_computed` lists only the fields that
are null for another reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..discover.auto_annotate import localises_cue, score_against_truth
from ..discover.retrieval import retrieval_precision
from ..discover.subsets_file import STAT_COLUMNS
from ..io import sha256_file, write_json
from ..io.tables import read_table, table_provenance
from ..stats import mean_ci

NO_TRUTH = "the image set has no planted cues or object masks (real data)"
ANNOTATED = ("spurious", "core")  # labels that count as annotated; not `unannotated`, `undecided`


def _f(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def has_planted_truth(pairs) -> bool:
    """Whether the pair table was measured against planted truth: its region statistics exist
    only where the image set has object and cue masks (the benchmark), NaN on real data."""
    return bool(len(pairs)) and bool(pairs["mass_object"].notna().any())


def recovery(pairs, planted: dict[str, list[str]], seed: int = 0) -> dict:
    """score_against_truth per kind: {npca, neurons_top5, neurons_top10} -> its score dict, with
    the bootstrap intervals of its scores (`auto_annotate.score_intervals`, seeded by `seed`)."""
    out = {}
    for key, kind, top in (("npca", "component", 10), ("neurons_top5", "neuron", 5), ("neurons_top10", "neuron", 10)):
        part = pairs[(pairs["kind"] == kind) & (pairs["rank"] <= top)].reset_index(drop=True)
        if part.empty or part["mass_object"].isna().any():
            out[key] = None
            continue
        ann = part.rename(columns={"class": "class_index", "feature": "feature_index"})[
            ["class_index", "feature_index", "label"]
        ]
        off = part["switched_off"].tolist() if "switched_off" in part else None
        out[key] = score_against_truth(ann, part.drop(columns=["label", "source"], errors="ignore"), planted, off,
                                       seed=seed, key=f"npca-{key}")  # fmt: skip
    return out


def harmful_record(pairs, harmful) -> dict:
    """The harmfulness check: components validated harmful, and how many of them are truly
    spurious (benchmark truth: `auto_annotate.localises_cue`, or switched off by a planted
    background cue, the pair table's `switched_off`)."""
    comps = pairs[pairs["kind"] == "component"]
    has_truth = comps["hot_object"].notna().to_numpy()  # no masks (real data): no truth
    off = comps["switched_off"].notna().to_numpy() if "switched_off" in comps else np.zeros(len(comps), bool)
    truth = {
        (int(k), int(l)): (bool(t) if h else None)
        for k, l, t, h in zip(comps["class"], comps["feature"], localises_cue(comps) | off, has_truth)
    }
    sel = harmful[harmful["harmful"].astype(bool)]
    hits = [truth.get((int(k), int(l))) for k, l in zip(sel["class"], sel["component"])]
    known = [h for h in hits if h is not None]
    return {
        "n_components_checked": int(len(harmful)),
        "n_components_harmful": int(len(sel)),
        "harmful_components": {f"{k}": sorted(int(x) for x in g["component"]) for k, g in sel.groupby("class")},
        "harm_rate": {
            f"{c}/{l}": _f(r) for c, l, r in zip(harmful["class_name"], harmful["component"], harmful["harm_rate"])
        },
        "harmful_precision": _f(np.mean(known)) if known else None,
    }


REACH_COLUMNS = ("corrected_pos", "correction_pos", "corrected_neg", "correction_neg", "transfer_corr")


def repaired_scores(classes, model: str, names: dict) -> dict:
    """The classes SpuFix repairs (some harmful component removed) and the model's mean cue-only
    spurious AUC over them before and after (Neuhaus et al. measure on such classes only), and per
    such class SpuFix's reach (`spufix_reach`: {class: {REACH_COLUMNS}}):
    the share of its test images and of its cue-only images whose class logit SpuFix lowered, the
    mean amounts, and the transfer's fidelity on its training images."""
    rows = classes[
        (classes["model"] == model) & (classes["negatives"] == "cue_only") & (classes["spufix_components"] > 0)
    ]
    rows = rows.dropna(subset=["spurious_auc_before", "spurious_auc_after"])
    return {
        "repaired_classes": [names.get(int(k), str(k)) for k in rows["class"]],
        "spurious_auc_repaired_before": _f(rows["spurious_auc_before"].mean()) if len(rows) else None,
        "spurious_auc_repaired_after": _f(rows["spurious_auc_after"].mean()) if len(rows) else None,
        "spufix_reach": {
            names.get(int(r["class"]), str(r["class"])): {c: _f(r[c]) for c in REACH_COLUMNS}
            for r in rows.to_dict("records")
        },
    }


MODEL_SCORES = ("spurious_auc", "spurious_ap", "retrieved_auc", "retrieved_ap")


def _ci(row: dict, metric: str) -> list | None:
    """[low, high] of the spufix models table's `<metric>_ci_low` / `_ci_high` columns, computed
    where the per-image scores are (stage `npca_spufix`); None where absent or NaN."""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [float(low), float(high)]


def _model_scores(models, classes, names: dict) -> dict:
    """Per model: transferred or not, its spurious and retrieval scores and accuracy before/after
    SpuFix with their bootstrap intervals (`<name>_ci`, where the stage computed one: the AUCs and
    the accuracies), and the repaired classes' mean cue-only AUC (`repaired_scores`) with its
    interval (`spurious_auc_repaired_*_ci`, the models table's `cue_only_auc_repaired_*_ci_*`)."""
    per_model = {}
    for r in models.to_dict("records"):
        column = {"spurious_auc": "cue_only_auc", "spurious_ap": "cue_only_ap"}
        m = {"transferred": bool(r["transferred"])}
        for score in MODEL_SCORES:
            for when in ("before", "after"):
                m[f"{score}_{when}"] = _f(r.get(f"{column.get(score, score)}_{when}"))
                m[f"{score}_{when}_ci"] = _ci(r, f"{column.get(score, score)}_{when}")
        for when in ("before", "after"):
            m[f"acc_{when}"], m[f"acc_{when}_ci"] = _f(r[f"acc_{when}"]), _ci(r, f"acc_{when}")
        repaired = repaired_scores(classes, r["model"], names)
        for when in ("before", "after"):
            known = repaired[f"spurious_auc_repaired_{when}"] is not None
            repaired[f"spurious_auc_repaired_{when}_ci"] = _ci(r, f"cue_only_auc_repaired_{when}") if known else None
        per_model[r["model"]] = {**m, **repaired}
    return per_model


@dataclass(frozen=True)
class NpcaSummarySettings(Settings):
    """Stage `npca_summary`: the seed of its bootstrap interval (docs/methods.md#bootstrap-intervals)."""

    KEYS = {"seed": "seed"}
    seed: int = 0


def retrieval_precision_ci(table, seed: int) -> list | None:
    """The bootstrap interval of `retrieval_precision` over the retrieved images with planted truth."""
    ok = table["has_cue"].notna()
    hits = ((table["has_cue"][ok] == 1) & (table["object_absent"][ok] == 1)).to_numpy(float)
    return mean_ci(hits, seed, "retrieval-precision")


def npca_summary(pairs, provenance: dict, retrieval, models, classes, harmful, seed: int = 0) -> dict:
    truth = has_planted_truth(pairs)
    rec = recovery(pairs, provenance.get("planted_cues", {}), seed) if truth else None
    comps = pairs[pairs["kind"] == "component"]
    labels = comps["label"].fillna("unannotated").astype(str)
    names = dict(zip(pairs["class"].astype(int), pairs["class_name"]))
    per_model = _model_scores(models, classes, names)
    robust = models[~models["transferred"].astype(bool)]
    err = (
        robust["transfer_invariant_max_abs_err"].iloc[0]
        if len(robust) and "transfer_invariant_max_abs_err" in robust
        else None
    )
    # the cue-only score exists where the cue-only set gave some class negatives (either kind of set)
    scored = {n: None not in (m["spurious_auc_before"], m["spurious_auc_after"]) for n, m in per_model.items()}
    auc_up = {n: m["spurious_auc_after"] > m["spurious_auc_before"] if scored[n] else None
              for n, m in per_model.items()}  # fmt: skip
    acc_loss = {n: (m["acc_before"] - m["acc_after"]) * 100 for n, m in per_model.items()}
    harm = harmful_record(pairs, harmful)
    ret_precision = retrieval_precision(retrieval) if len(retrieval) else None
    not_computed = {}
    if not truth:
        for key in (
            "planted_cues_recovered",
            "planted_cue_recovery",
            "annotator_precision",
            "annotator_precision_presence_only",
            "acceptance/npca_recovery_at_least_0.9",
        ):
            not_computed[key] = NO_TRUTH
    if harm["harmful_precision"] is None:
        not_computed["harmfulness/harmful_precision"] = NO_TRUTH if not truth else "no component was validated harmful"
    if ret_precision is None:
        not_computed["retrieval_precision"] = NO_TRUTH if not truth and len(retrieval) else "no image was retrieved"
    if per_model and not any(scored.values()):
        not_computed["models/*/spurious_auc_*, spurious_ap_*"] = "no class had both test images and cue-only negatives"

    def per_kind(value):
        """{kind: value(score) or None} of the recovery scores; None without planted truth."""
        return {k: (value(v) if v else None) for k, v in rec.items()} if rec else None

    return {
        "planted_cues_recovered": per_kind(lambda v: v["planted_cues_recovered"]),
        "planted_cues_recovered_ci": per_kind(lambda v: v["planted_cues_recovered_ci"]),
        "planted_cue_recovery": per_kind(lambda v: v["recovered"]),
        "annotator_precision": per_kind(lambda v: _f(v["precision"])),
        "annotator_precision_ci": per_kind(lambda v: v["precision_ci"]),
        "annotator_precision_presence_only": per_kind(lambda v: _f(v["precision_presence_only"])),
        "n_components": int(len(comps)),
        "n_components_annotated": int(labels.isin(ANNOTATED).sum()),
        "n_components_spurious": int((labels == "spurious").sum()),
        "component_labels": {str(k): int(v) for k, v in labels.value_counts().sort_index().items()},
        "spurious_components": {
            f"{k}": sorted(int(x) for x in g["feature"]) for k, g in comps[labels == "spurious"].groupby("class")
        },  # fmt: skip
        "harmfulness": harm,
        "retrieval_precision": ret_precision,
        "retrieval_precision_ci": retrieval_precision_ci(retrieval, seed) if ret_precision is not None else None,
        "retrieved_images": int(len(retrieval)),
        "models": per_model,
        "transfer_invariant_max_abs_err": _f(err),
        "acceptance": {
            "spufix_raises_mean_spurious_auc": auc_up,
            # judged on the classes SpuFix repairs, as Neuhaus et al. measure it
            "spufix_raises_repaired_spurious_auc": {
                n: (
                    m["spurious_auc_repaired_after"] > m["spurious_auc_repaired_before"]
                    if m["spurious_auc_repaired_before"] is not None
                    else None
                )
                for n, m in per_model.items()
            },
            "test_accuracy_loss_points": acc_loss,
            "npca_recovery_at_least_0.9": (rec["npca"] or {}).get("planted_cues_recovered", 0) >= 0.9 if rec else None,
        },
        "per_class": classes.replace({np.nan: None}).to_dict("records"),
        "not_computed": not_computed,
    }


def run_npca_summary(pairs_path, retrieval_path, harmful_path, classes_path, models_path, out,
                     settings: NpcaSummarySettings = NpcaSummarySettings()) -> dict:  # fmt: skip
    pairs = read_table(pairs_path, columns=list(STAT_COLUMNS))
    prov = table_provenance(pairs_path)
    pairs_sha = sha256_file(pairs_path)
    retrieval = read_table(retrieval_path, expect={"pairs_sha256": pairs_sha})
    classes = read_table(
        classes_path,
        expect={"pairs_sha256": pairs_sha, "retrieval_sha256": sha256_file(retrieval_path)},
        columns=["model", "negatives", "class", "spufix_components", *REACH_COLUMNS],
    )
    models = read_table(
        models_path,
        expect={
            "pairs_sha256": pairs_sha,
            "retrieval_sha256": sha256_file(retrieval_path),
            "harmful_sha256": sha256_file(harmful_path),
        },
    )
    harmful = read_table(harmful_path, expect={"pairs_sha256": pairs_sha})
    summary = npca_summary(pairs, prov, retrieval=retrieval, models=models, classes=classes, harmful=harmful,
                           seed=settings.seed)  # fmt: skip
    summary["cue_only_negatives"] = table_provenance(models_path).get("cue_only_negatives")
    summary["inputs"] = {"pairs_sha256": pairs_sha, "retrieval_sha256": sha256_file(retrieval_path),
                         "harmful_sha256": sha256_file(harmful_path),
                         "spufix_classes_sha256": sha256_file(classes_path), "spufix_models_sha256": sha256_file(models_path)}  # fmt: skip
    write_json(out, json.loads(json.dumps(summary, default=_default)))
    return summary


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)
