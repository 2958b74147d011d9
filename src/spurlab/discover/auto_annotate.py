"""Automatic annotation and its ground truth on the planted-cue benchmark (docs/methods.md#annotation).

Automatic annotator (proposed in the Spuriosity Rankings appendix, Moayeri et al. 2023): a feature
is spurious for class k when most of its NAM over its top images lies outside the class object's
mask. Two readings of "most of the NAM":

- `criterion="hot"` (default): the NAM's hot region, where it reaches half its maximum (the red
  part of a heatmap, what a human annotator judges), has a fraction on the object below
  `threshold` (0.5). The object is its mask grown by `salient.annotation.auto_object_margin`
  feature-map cells (`hot_object_near`): a map upsampled from an 8x8 grid cannot put its hot
  region on an object thinner or smaller than a cell, and a person reading the heatmap allows
  for that.
- `criterion="mass"` (literal): more than `threshold` (0.5) of the NAM's total mass lies outside
  the object. At the benchmark's resolution (small objects, NAMs upsampled from 8x8) this calls
  nearly every feature spurious: the low tail of a map centred on the object spreads most of its
  mass over the much larger background.

Ground truth (needs object and cue masks, so generated sets only), the union of two kinds:
- a pair *localises its class's planted cue* (`subsets_file.pair_region_stats`): most of its images
  show the cue (`cue_share` >= `MIN_CUE_SHARE`) and, on those, more of its hot region lies on the
  cue mask than on the object mask and, for a cue that does not cover the whole background (tag,
  stripe, co-object), the NAM is denser on the cue than on the remaining pixels;
- a planted background cue (a `background` scene or a `blur`) *switches it off* (`cue_switched_off`):
  "not water" is evidence against disk and so for every other class. Measured where the generator
  draws the cue independently of the object: its mean activation on images with the cue, top and
  bottom `SWITCH_TRIM` (10%) trimmed, is under `SWITCH_OFF_RATIO` (10%) of its mean on images
  showing no background cue. This holds for whichever class ranks the feature, the cue's own
  classes included.
The first kind alone is reported beside the union (`precision_presence_only`); classes without a
cue of their own can have truly spurious features only of the second kind. Why the trimmed mean
and what it measures on the benchmark: docs/findings/benchmark.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, write_table
from ..stats import bootstrap_ci, mean_ci
from .annotate import annotation_counts, check_coverage, exported_pairs, human_annotations, read_mturk_csv
from .subsets_file import STAT_COLUMNS, SalientSubsets

CRITERIA = ("hot", "mass")
BACKGROUND_CUE_TYPES = ("background", "blur")  # cues whose mask is the whole background
SWITCH_OFF_RATIO = 0.1  # "switched off": under 10% of the activation left with the cue on
SWITCH_TRIM = 0.1  # the cued images' mean is trimmed by this fraction at each end
SWITCH_MIN_IMAGES = 10  # images needed on each side of the comparison
MIN_CUE_SHARE = 0.5  # a feature about a cue shows it on most of its top images


def _density(mass, area):
    """Mean NAM value on a region relative to the image mean: mass share / area share."""
    mass, area = np.asarray(mass, float), np.asarray(area, float)
    return np.divide(mass, area, out=np.full_like(mass, np.nan), where=area > 1e-9)


def is_spurious_auto(pairs: pd.DataFrame, criterion: str = "hot", threshold: float = 0.5) -> np.ndarray:
    """The automatic annotator's verdict per pair (bool array) from its object-mask statistics."""
    if criterion == "hot":
        return pairs["hot_object_near"].to_numpy(float) < threshold
    if criterion == "mass":
        return 1 - pairs["mass_object"].to_numpy(float) > threshold
    raise ValueError(f"auto annotation criterion must be one of {CRITERIA}, not {criterion!r}")


def localises_cue(pairs: pd.DataFrame) -> np.ndarray:
    """Ground truth per pair (see the module docstring)."""
    share = pairs["cue_share"].to_numpy(float)
    hot_cue, hot_obj = pairs["hot_cue"].to_numpy(float), pairs["hot_object_cued"].to_numpy(float)
    cue = np.nan_to_num(_density(pairs["mass_cue"], pairs["area_cue"]), nan=-np.inf)
    rest = np.nan_to_num(_density(pairs["mass_rest"], pairs["area_rest"]), nan=-np.inf)
    small_rest = pairs["area_rest"].to_numpy(float) < 0.05  # a background cue leaves no other pixels
    return (share >= MIN_CUE_SHARE) & (hot_cue > hot_obj) & (small_rest | (cue > rest))


def background_cues(imageset) -> tuple[dict[str, np.ndarray], dict[str, set[int]]]:
    """Planted cues of a generated set that replace the background (BACKGROUND_CUE_TYPES): per cue,
    which images show it (its `cue_<name>` meta column) and the class indices it is planted in.
    Empty for sets the generator did not make."""
    cfg = (imageset.attrs.get("config") or {}).get("datasets") or {}
    specs, table = cfg.get("cues") or {}, cfg.get("cue_table") or {}
    names = list(imageset.class_names)
    cues = [q for q, spec in specs.items() if spec.get("type") in BACKGROUND_CUE_TYPES]
    cues = [q for q in cues if f"cue_{q}" in imageset.meta_columns]
    if not cues:
        return {}, {}
    meta = imageset.meta([f"cue_{q}" for q in cues])
    flags = {q: meta[f"cue_{q}"].to_numpy().astype(bool) for q in cues}
    owners = {q: {names.index(c) for c, row in table.items() if row.get("cue") == q and c in names} for q in cues}
    return flags, owners


def cue_switched_off(pairs: pd.DataFrame, columns: dict[int, np.ndarray], labels: np.ndarray,
                     flags: dict[str, np.ndarray], owners: dict[str, set[int]], ratio: float = SWITCH_OFF_RATIO,
                     min_images: int = SWITCH_MIN_IMAGES, trim: float = SWITCH_TRIM) -> list[str | None]:  # fmt: skip
    """Per pair (class k, feature j): a background cue that switches j off, else None (see the
    module docstring).

    `columns[j]` is j's activation on every image of the set, `labels` their classes (-1: none),
    `flags[q]` which images show cue q, `owners[q]` the classes q is planted in. Over the labelled
    images of the classes q is not planted in, j's mean with q on, trimmed by `trim` at each end
    (scipy.stats.trim_mean), must be below `ratio` times its mean on the images showing no
    background cue, with at least `min_images` images on each side.
    """
    from scipy.stats import trim_mean

    labels = np.asarray(labels)
    any_cue = np.zeros(len(labels), bool)
    for f in flags.values():
        any_cue |= f
    # per cue, the two image groups it is judged on (the same for every pair)
    groups = {}
    for q, on in flags.items():
        rows = (labels >= 0) & ~np.isin(labels, sorted(owners[q]))
        with_cue, without = rows & on, rows & ~any_cue
        if with_cue.sum() >= min_images and without.sum() >= min_images:
            groups[q] = (with_cue, without)
    verdict: dict[int, str | None] = {}  # depends on the feature only
    for j in pd.unique(pairs["feature"].astype(int)):
        verdict[int(j)] = None
        for q, (with_cue, without) in groups.items():
            base = float(columns[j][without].mean())
            if base > 0 and float(trim_mean(columns[j][with_cue], trim)) < ratio * base:
                verdict[int(j)] = q
                break
    return [verdict[int(j)] for j in pairs["feature"]]


def switched_off_truth(pairs: pd.DataFrame, imageset, features_path, model_dir) -> list[str | None] | None:
    """`cue_switched_off` for every pair, from `model_dir`'s feature cache of `imageset` (checked
    against both); None when the set has no background-replacing planted cue."""
    flags, owners = background_cues(imageset)
    if not flags:
        return None
    cols = np.unique(pairs["feature"].astype(np.int64))
    with open_features(features_path, model_dir=model_dir, imageset=imageset) as fc:
        labels = fc["labels"]
        values = np.concatenate([block[:, cols] for _, block in fc.blocks("features")]).astype(np.float64)
    return cue_switched_off(pairs, {int(j): values[:, i] for i, j in enumerate(cols)}, labels, flags, owners)


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
        "hot_outside_object": 1 - pairs["hot_object_near"].to_numpy(float),
        "mass_outside_object": 1 - pairs["mass_object"].to_numpy(float),
    })  # fmt: skip
    return df.sort_values(["class_index", "feature_rank"]).reset_index(drop=True)


def _ratio(hits: np.ndarray, among: np.ndarray) -> float:
    """The share of `hits` among the rows where `among` is set (NaN where there are none)."""
    n = int(among.sum())
    return float((hits & among).sum() / n) if n else float("nan")


def score_intervals(pred, truth, recovered: dict, seed: int = 0, key: str = "annotator") -> dict:
    """The 95% bootstrap intervals (docs/methods.md#bootstrap-intervals) of `score_against_truth`'s
    precision, recall (`pred`, `truth`: one bool per class-feature pair) and planted-cue recovery
    (`recovered`: one bool per planted (class, cue) pair): `<name>_ci`, None where undefined.

    Precision and recall are ratio estimators (true positives over the pairs annotated spurious,
    over the truly spurious pairs), whose denominators are themselves counts of the sample: every
    class-feature pair is resampled (with its annotation and its truth) and both ratios recomputed,
    so the interval carries the variation of the denominator too, not only that of the share
    within a fixed set of annotated (or truly spurious) pairs. A resample without a pair in the
    denominator leaves the ratio undefined: it is left out (`drop_undefined`). The recovery is a
    mean over the planted (class, cue) pairs, which are resampled."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    hits = list(recovered.values())
    return {
        "precision_ci": bootstrap_ci([pred, truth], lambda p, t: _ratio(t, p), seed, f"{key}-precision",
                                     drop_undefined=True),
        "recall_ci": bootstrap_ci([pred, truth], lambda p, t: _ratio(p, t), seed, f"{key}-recall",
                                  drop_undefined=True),
        "planted_cues_recovered_ci": mean_ci(np.asarray(hits, float), seed, f"{key}-planted-cues-recovered")
        if hits else None,
    }  # fmt: skip


def score_against_truth(annotations: pd.DataFrame, pairs: pd.DataFrame, planted: dict[str, list[str]],
                        switched_off: list[str | None] | None = None, *, seed: int = 0,
                        key: str = "annotator") -> dict:  # fmt: skip
    """Precision/recall of spurious annotations against the planted truth (`localises_cue`, or
    switched off by another class's background cue: `cue_switched_off`, given as `switched_off`),
    the same against `localises_cue` alone (`*_presence_only`), and the fraction of planted
    (class, cue) pairs recovered: some annotated-spurious feature of the class localises it.
    `precision_ci`, `recall_ci`, `planted_cues_recovered_ci`: their bootstrap intervals
    (`score_intervals`, seeded by `seed` and `key`)."""
    presence = localises_cue(pairs)
    # a table read back may hold NaN where None was written
    off = [q if isinstance(q, str) else None for q in (switched_off or [None] * len(pairs))]
    absence = np.array([q is not None for q in off], bool)
    merged = pairs.assign(truth=presence | absence, presence=presence).merge(
        annotations[["class_index", "feature_index", "label"]],
        left_on=["class", "feature"], right_on=["class_index", "feature_index"], how="left", validate="one_to_one",
    )  # fmt: skip
    pred = merged["label"].eq("spurious").to_numpy()
    truth, presence = merged["truth"].to_numpy(), merged["presence"].to_numpy()
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    recovered = {}
    for cname, cues in sorted(planted.items()):
        hit = merged[(merged["class_name"] == cname) & merged["presence"] & (merged["label"] == "spurious")]
        for cue in cues:
            recovered[f"{cname}/{cue}"] = bool(len(hit))

    def listed(mask):
        return [f"{c}/{int(j)}" for c, j in zip(merged.loc[mask, "class_name"], merged.loc[mask, "feature"])]

    def ratio(a, b):
        return a / b if b else float("nan")

    return {
        "false_positives_list": listed(pred & ~truth),
        "false_negatives_list": listed(~pred & truth),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "n_truly_spurious": int(truth.sum()),
        "n_cue_present": int(presence.sum()),
        "n_cue_switched_off": int((truth & ~presence).sum()),
        "switched_off_list": {f"{c}/{int(j)}": q for c, j, q in zip(pairs["class_name"], pairs["feature"], off) if q},
        "truth": [bool(t) for t in truth],
        "precision_presence_only": ratio(int((pred & presence).sum()), int(pred.sum())),
        "recall_presence_only": ratio(int((pred & presence).sum()), int(presence.sum())),
        "planted_cues_recovered": float(np.mean(list(recovered.values()))) if recovered else float("nan"),
        "recovered": recovered,
        **score_intervals(pred, truth, recovered, seed, key),
    }  # fmt: skip


def run_annotations(subsets_path, out, settings: dict, human_csv=None) -> dict:
    """Stage `annotations`: the one annotations table every later stage reads (.parquet + .csv).

    `settings` is the config's `salient.annotation`; `human_csv` (answers in the Salient ImageNet
    MTurk layout) is required when its source is "human". Human answers go through
    `annotate.human_annotations` against the subsets' pairs: unanswered pairs stay as
    "unannotated", answers to other pairs are counted in the coverage block of the table's
    provenance, and fewer than `min_coverage` of the pairs answered is an error.
    """
    with SalientSubsets(subsets_path) as subsets:
        pairs, names = subsets.pair_table(require=STAT_COLUMNS), subsets.class_names
        has_masks = bool(subsets.attrs["has_masks"])
    provenance = {"subsets_sha256": sha256_file(subsets_path), "source": settings["source"]}
    if settings["source"] == "human":
        if human_csv is None:
            raise SpurlabError("config key salient.annotation.human_csv: required when the source is human")
        table, coverage = human_annotations(read_mturk_csv(human_csv, names), exported_pairs(pairs),
                                            settings["min_spurious_votes"])  # fmt: skip
        # settings built in code (tests, older callers) may lack the key: every pair must be answered
        check_coverage(coverage, settings.get("min_coverage", 1.0), human_csv)
        provenance.update(human_csv_sha256=sha256_file(human_csv), min_spurious_votes=settings["min_spurious_votes"],
                          coverage=coverage)  # fmt: skip
    else:
        if not has_masks:
            raise SpurlabError(
                f"{subsets_path}: automatic annotation needs object masks, which this image set lacks; "
                "set salient.annotation.source: human and give salient.annotation.human_csv"
            )
        table = auto_annotations(pairs, settings["auto_criterion"], settings["auto_threshold"])
        provenance.update(criterion=settings["auto_criterion"], threshold=settings["auto_threshold"])
    write_table(table, out, provenance)
    info = annotation_counts(table) | {"source": settings["source"]}
    if "coverage" in provenance:
        info["coverage"] = provenance["coverage"]
    return info


def head_accuracy_ci(features_path, model_dir, imageset, seed: int) -> list | None:
    """The bootstrap interval of the head's test accuracy: its predictions (the feature cache's
    logits) on the labelled test images, resampled (docs/methods.md#bootstrap-intervals)."""
    with open_features(features_path, model_dir=model_dir, imageset=imageset) as fc:
        labels, logits = np.asarray(fc["labels"]), np.asarray(fc["logits"])
    keep = labels >= 0
    return mean_ci((logits[keep].argmax(1) == labels[keep]).astype(float), seed, "head-test-acc")


def lightweight_summary(subsets_path, annotations_path, model_dir, imageset_path, features_path,
                        seed: int = 0) -> dict:  # fmt: skip
    """Lightweight discovery on a new task (docs/methods.md#lightweight-discovery): how well the annotations of the fitted
    head's top features recover the new task's planted cues, with the head's accuracy.
    `imageset_path` is the set the subsets were built on, `features_path` the model's cache of it;
    `seed` seeds the intervals of the head's accuracy (`head_accuracy_ci`) and of the annotator's
    scores (`score_intervals`)."""
    import json
    from pathlib import Path

    annotations = read_table(annotations_path, expect={"subsets_sha256": sha256_file(subsets_path)})
    with SalientSubsets(subsets_path) as subsets:
        if not subsets.attrs["has_masks"]:
            raise SpurlabError(f"{subsets_path}: no object masks, so nothing to score against")
        if subsets.attrs["checkpoint_sha256"] != model_checkpoint_sha256(model_dir):
            raise SpurlabError(f"{subsets_path}: built with another model than {model_dir}; rebuild it")
        pairs, planted = subsets.pair_table(require=STAT_COLUMNS), subsets.planted_cues
        imageset = ImageSet(imageset_path)
        if subsets.attrs["imageset_sha256"] != imageset.sha256:
            raise SpurlabError(f"{subsets_path}: built from another image set than {imageset_path}; rebuild it")
    meta = json.loads((Path(model_dir) / "meta.json").read_text())
    score = score_against_truth(annotations, pairs, planted, switched_off_truth(pairs, imageset, features_path, model_dir),
                                seed=seed, key="lightweight-annotator")  # fmt: skip
    return {
        "classes": meta["class_names"],
        "head_train_acc": meta["metrics"]["train_acc"],
        "head_test_acc": meta["metrics"]["test_acc"],
        "head_test_acc_ci": head_accuracy_ci(features_path, model_dir, imageset, seed),
        "n_pairs": int(len(annotations)),
        "n_spurious": int((annotations["label"] == "spurious").sum()),
        "auto_annotator_precision": score["precision"],
        "auto_annotator_precision_ci": score["precision_ci"],
        "auto_annotator_recall": score["recall"],
        "auto_annotator_recall_ci": score["recall_ci"],
        "auto_annotator_precision_presence_only": score["precision_presence_only"],
        "planted_cues_recovered": score["planted_cues_recovered"],
        "planted_cues_recovered_ci": score["planted_cues_recovered_ci"],
        "planted_cue_recovery": score["recovered"],
        "switched_off": score["switched_off_list"],
        "false_positives": score["false_positives_list"],
        "inputs": {
            "subsets_sha256": sha256_file(subsets_path),
            "annotations_sha256": sha256_file(annotations_path),
            "imageset_sha256": imageset.sha256,
            "features_sha256": sha256_file(features_path),
        },  # fmt: skip
    }
