"""`results/models/summary.json`: the model suite's accuracies and its reliance on the planted cues.

Reliance is measured on the `counterfactual` split, whose rows 2i / 2i+1 are the same test image
with the class's cue on / off (control classes: the control cue). Per class,
``counterfactual_gap = acc(cue on) - acc(cue off)``, a fraction. The benchmark is only useful if
ERM models show large gaps on cue classes and none on control classes.

The same twins make a group-balanced test set with groups (class, cue on/off)
(`spurlab.measure.groups`; docs/methods.md#groups-and-worst-group-accuracy): per model, the
accuracy of every group (`group_acc`), the worst group and its accuracy (`worst_group`,
`worst_group_acc`) and the mean over groups (`mean_group_acc`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import trained_models
from .data.feature_cache import open_features
from .data.imagesets import open_imageset
from .errors import SpurlabError
from .measure.groups import counterfactual_cue_on, group_summary
from .stats import mean_ci


def counterfactual_gaps(preds: np.ndarray, labels: np.ndarray, cue_on: np.ndarray, class_names: list[str]) -> dict:
    if not (cue_on[0::2].all() and not cue_on[1::2].any()):
        raise SpurlabError("counterfactual set: rows must alternate cue on / cue off")
    correct = preds == labels
    on, off, y = correct[0::2], correct[1::2], labels[0::2]
    return {
        name: round(float(on[y == c].mean() - off[y == c].mean()), 6)
        for c, name in enumerate(class_names)
        if (y == c).any()
    }


def twin_differences(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per twin pair (rows 2i, 2i+1): correct with the cue on minus correct with it off (-1, 0, 1)."""
    correct = (preds == labels).astype(float)
    return correct[0::2] - correct[1::2]


def mean_gap_ci(diffs: np.ndarray, labels: np.ndarray, classes: list[int], seed: int, key: str) -> list | None:
    """The bootstrap interval of the mean over `classes` of the class gaps: twin pairs resampled
    within their class (`diffs`, `labels`: one per pair; docs/methods.md#bootstrap-intervals)."""
    keep = np.isin(labels, classes)
    return mean_ci(diffs[keep], seed, key, strata=labels[keep]) if keep.any() else None


def models_summary(cfg: dict, models_dir: Path, features_dir: Path, counterfactual_set: Path) -> dict:
    cf = open_imageset(counterfactual_set)
    cue_on = counterfactual_cue_on(cf)
    cue_classes = [c for c in cfg["datasets"]["classes"] if c in cfg["datasets"]["cue_table"]]
    out: dict = {"models": {}}
    seed, diffs = int(cfg["seed"]), {}
    for name in cfg["models"]:
        mdir = Path(models_dir) / name
        meta = json.loads((mdir / "meta.json").read_text())
        with open_features(Path(features_dir) / name / "test.h5", model_dir=mdir) as test:
            test_acc = float((test["preds"] == test["labels"]).mean())
        with open_features(Path(features_dir) / name / "counterfactual.h5", model_dir=mdir, imageset=cf) as fc:
            gaps = counterfactual_gaps(fc["preds"], fc["labels"], cue_on, fc.class_names)
            groups = group_summary(fc["preds"] == fc["labels"], fc["labels"], cue_on, fc.class_names)
            diffs[name], pair_labels, names = (
                twin_differences(fc["preds"], fc["labels"]),
                fc["labels"][0::2],
                fc.class_names,
            )
        cue_idx = [names.index(c) for c in cue_classes if c in names]
        control_idx = [i for i, c in enumerate(names) if c not in cue_classes and c in gaps]
        entry = {
            "test_acc": round(test_acc, 6),
            "robust": bool(meta.get("robust", False)),
            "train_seconds": meta.get("train_seconds"),
            "counterfactual_gap": gaps,
            "cue_class_mean_gap": round(float(np.mean([gaps[c] for c in cue_classes])), 6),
            "control_class_mean_gap": round(float(np.mean([g for c, g in gaps.items() if c not in cue_classes])), 6),
            "cue_class_mean_gap_ci": mean_gap_ci(diffs[name], pair_labels, cue_idx, seed, f"cue-gap-{name}"),
            "control_class_mean_gap_ci": mean_gap_ci(
                diffs[name], pair_labels, control_idx, seed, f"control-gap-{name}"
            ),
            **{k: groups[k] for k in ("worst_group_acc", "worst_group", "mean_group_acc", "group_acc")},
        }
        if entry["robust"]:
            entry["adv_acc"] = meta.get("metrics", {}).get("val_adv_acc")
            entry["eps"] = meta.get("metrics", {}).get("eps")
        out["models"][name] = entry
    erm = [n for n in trained_models(cfg) if not out["models"][n]["robust"]]
    if not erm:
        raise SpurlabError("models: the suite has no ERM model to measure reliance on")
    out["cue_class_mean_gap"] = round(float(np.mean([out["models"][n]["cue_class_mean_gap"] for n in erm])), 6)
    out["control_class_mean_gap"] = round(float(np.mean([out["models"][n]["control_class_mean_gap"] for n in erm])), 6)
    # ERM models on the same twins: one resample of the pairs serves every model (their mean difference)
    erm_diffs = np.mean([diffs[n] for n in erm], axis=0)
    out["cue_class_mean_gap_ci"] = mean_gap_ci(erm_diffs, pair_labels, cue_idx, seed, "cue-gap")
    out["control_class_mean_gap_ci"] = mean_gap_ci(erm_diffs, pair_labels, control_idx, seed, "control-gap")
    out["erm_models"] = erm
    out["cue_classes"] = cue_classes
    return out
