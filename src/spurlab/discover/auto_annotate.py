"""Automatic annotation and its ground truth on the planted-cue benchmark (SPEC 4.7).

Automatic annotator (proposed in the Spuriosity Rankings appendix, Moayeri et al. 2023): a feature
is spurious for class k when most of its NAM over its top images lies outside the class object's
mask. Two readings of "most of the NAM":

- `criterion="hot"` (default): the NAM's hot region, where it reaches half its maximum (the red
  part of a heatmap, what a human annotator judges), lies mostly outside the object: its fraction
  on the object mask is below `threshold` (0.5).
- `criterion="mass"` (literal): more than `threshold` (0.5) of the NAM's total mass lies outside
  the object. At the benchmark's resolution (objects cover ~5-15% of a 64x64 image, NAMs are
  upsampled from 8x8) this calls nearly every feature spurious: the low tail of a map centred on
  the object still spreads most of its mass over the much larger background.

Ground truth (benchmark only): a (class, feature) pair *localises its class's planted cue* when
more of its hot region lies on the cue mask than on the object mask and, for a cue that does not
cover the whole background (tag, stripe, co-object), the NAM is denser on the cue than on the
remaining pixels: the reading of "its activation-map mass lies mostly on a planted cue mask of
that class" that holds for both small and background-sized cues. Classes without a cue have no
truly spurious features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CRITERIA = ("hot", "mass")


def _density(mass, area):
    """Mean NAM value on a region relative to the image mean: mass share / area share."""
    mass, area = np.asarray(mass, float), np.asarray(area, float)
    return np.divide(mass, area, out=np.full_like(mass, np.nan), where=area > 1e-9)


def is_spurious_auto(pairs: pd.DataFrame, criterion: str = "hot", threshold: float = 0.5) -> np.ndarray:
    """The automatic annotator's verdict per pair (bool array) from its object-mask statistics."""
    if criterion == "hot":
        return pairs["hot_object"].to_numpy(float) < threshold
    if criterion == "mass":
        return 1 - pairs["mass_object"].to_numpy(float) > threshold
    raise ValueError(f"auto annotation criterion must be one of {CRITERIA}, not {criterion!r}")


def localises_cue(pairs: pd.DataFrame) -> np.ndarray:
    """Ground truth per pair (see the module docstring)."""
    hot_cue, hot_obj = pairs["hot_cue"].to_numpy(float), pairs["hot_object"].to_numpy(float)
    cue = np.nan_to_num(_density(pairs["mass_cue"], pairs["area_cue"]), nan=-np.inf)
    rest = np.nan_to_num(_density(pairs["mass_rest"], pairs["area_rest"]), nan=-np.inf)
    small_rest = pairs["area_rest"].to_numpy(float) < 0.05  # a background cue leaves no other pixels
    return (pairs["area_cue"].to_numpy(float) > 0) & (hot_cue > hot_obj) & (small_rest | (cue > rest))


def auto_annotations(pairs: pd.DataFrame, criterion: str = "hot", threshold: float = 0.5) -> pd.DataFrame:
    """The annotations table (the human table's columns, `source` "auto") from a pair table with
    object-mask statistics (SalientSubsets.pair_table())."""
    if pairs["mass_object"].isna().any():
        raise ValueError("automatic annotation needs object masks")
    spurious = is_spurious_auto(pairs, criterion, threshold)
    df = pd.DataFrame({
        "class_index": pairs["class"].astype(np.int64),
        "class_name": pairs["class_name"],
        "feature_index": pairs["feature"].astype(np.int64),
        "feature_rank": pairs["rank"].astype(np.int64),
        "label": np.where(spurious, "spurious", "core"),
        "kind": np.where(spurious, "outside_object", "main_object"),
        "votes_main": 0, "votes_separate": 0, "votes_background": 0, "n_votes": 0,
        "mean_confidence": np.nan,
        "source": "auto",
        "hot_outside_object": 1 - pairs["hot_object"].to_numpy(float),
        "mass_outside_object": 1 - pairs["mass_object"].to_numpy(float),
    })  # fmt: skip
    return df.sort_values(["class_index", "feature_rank"]).reset_index(drop=True)


def score_against_truth(annotations: pd.DataFrame, pairs: pd.DataFrame, planted: dict[str, list[str]]) -> dict:
    """Precision/recall of spurious annotations against `localises_cue`, and the fraction of
    planted (class, cue) pairs recovered: some annotated-spurious feature of the class localises it."""
    merged = pairs.assign(truth=localises_cue(pairs)).merge(
        annotations[["class_index", "feature_index", "label"]],
        left_on=["class", "feature"], right_on=["class_index", "feature_index"], how="left", validate="one_to_one",
    )  # fmt: skip
    pred = merged["label"].eq("spurious").to_numpy()
    truth = merged["truth"].to_numpy()
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    recovered = {}
    for cname, cues in sorted(planted.items()):
        hit = merged[(merged["class_name"] == cname) & merged["truth"] & (merged["label"] == "spurious")]
        for cue in cues:
            recovered[f"{cname}/{cue}"] = bool(len(hit))
    def listed(mask):
        return [f"{c}/{int(j)}" for c, j in zip(merged.loc[mask, "class_name"], merged.loc[mask, "feature"])]

    return {
        "false_positives_list": listed(pred & ~truth),
        "false_negatives_list": listed(~pred & truth),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "n_truly_spurious": int(truth.sum()),
        "planted_cues_recovered": float(np.mean(list(recovered.values()))) if recovered else float("nan"),
        "recovered": recovered,
    }  # fmt: skip


def run_annotations(subsets_path, out, settings: dict, human_csv=None) -> dict:
    """Stage `annotations`: the one annotations table every later stage reads (.parquet + .csv).

    `settings` is the config's `salient.annotation`; `human_csv` (answers in the Salient ImageNet
    MTurk layout) is required when its source is "human".
    """
    from ..errors import SpurlabError
    from ..io import sha256_file
    from ..report.tables import write_table
    from .annotate import majority_annotations, read_mturk_csv
    from .subsets import SalientSubsets

    with SalientSubsets(subsets_path) as subsets:
        pairs, names = subsets.pair_table(), subsets.class_names
        has_masks = bool(subsets.attrs["has_masks"])
    provenance = {"subsets_sha256": sha256_file(subsets_path), "source": settings["source"]}
    if settings["source"] == "human":
        if human_csv is None:
            raise SpurlabError("config key salient.annotation.human_csv: required when the source is human")
        votes = read_mturk_csv(human_csv, names, set(zip(pairs["class"].tolist(), pairs["feature"].tolist())))
        table = majority_annotations(votes, settings["min_spurious_votes"])
        provenance["human_csv_sha256"] = sha256_file(human_csv)
    else:
        if not has_masks:
            raise SpurlabError(
                f"{subsets_path}: automatic annotation needs object masks, which this image set lacks; "
                "set salient.annotation.source: human and give salient.annotation.human_csv"
            )
        table = auto_annotations(pairs, settings["auto_criterion"], settings["auto_threshold"])
        provenance.update(criterion=settings["auto_criterion"], threshold=settings["auto_threshold"])
    write_table(table, out, provenance)
    return {"pairs": len(table), "spurious": int((table["label"] == "spurious").sum()), "source": settings["source"]}


def lightweight_summary(subsets_path, annotations_path, model_dir) -> dict:
    """Lightweight discovery on a new task (SPEC 6.3): how well the annotations of the fitted
    head's top features recover the new task's planted cues, with the head's accuracy."""
    import json
    from pathlib import Path

    from ..errors import SpurlabError
    from ..features import model_checkpoint_sha256
    from ..io import sha256_file
    from ..report.tables import read_table
    from .subsets import SalientSubsets

    annotations = read_table(annotations_path, expect={"subsets_sha256": sha256_file(subsets_path)})
    with SalientSubsets(subsets_path) as subsets:
        if not subsets.attrs["has_masks"]:
            raise SpurlabError(f"{subsets_path}: no object masks, so nothing to score against")
        if subsets.attrs["checkpoint_sha256"] != model_checkpoint_sha256(model_dir):
            raise SpurlabError(f"{subsets_path}: built with another model than {model_dir}; rebuild it")
        pairs, planted = subsets.pair_table(), subsets.planted_cues
    meta = json.loads((Path(model_dir) / "meta.json").read_text())
    score = score_against_truth(annotations, pairs, planted)
    return {
        "classes": meta["class_names"],
        "head_train_acc": meta["metrics"]["train_acc"],
        "head_test_acc": meta["metrics"]["test_acc"],
        "n_pairs": int(len(annotations)),
        "n_spurious": int((annotations["label"] == "spurious").sum()),
        "auto_annotator_precision": score["precision"],
        "auto_annotator_recall": score["recall"],
        "planted_cues_recovered": score["planted_cues_recovered"],
        "planted_cue_recovery": score["recovered"],
        "inputs": {"subsets_sha256": sha256_file(subsets_path), "annotations_sha256": sha256_file(annotations_path)},
    }
