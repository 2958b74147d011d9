"""Spuriosity rankings and spurious gaps (Moayeri et al. 2023, secs. 3-4; docs/methods.md#spuriosity-rankings).

Spuriosity of image x for class c, over the class's annotated spurious neural features S(c)::

    spuriosity(x, c) = mean_{i in S(c)} (r_i(x) - mu_ic) / sigma_ic

with r_i the discovery (robust) model's penultimate feature i and (mu_ic, sigma_ic) its mean and
standard deviation over the images labelled c of a reference set (the training set by default:
the paper ranks ImageNet train and val by train statistics). Images are sorted within their class.

Spurious gap of a model on class c: accuracy on the k highest-spuriosity images of c minus accuracy
on the k lowest (paper: k = 10 on validation). The public reference code takes the *lowest* 100 of
its top-1000 list as "high", so with <= 1000 images per class high == low and every gap is 0; here
the true k highest are taken (docs/methods.md#spuriosity-rankings). Ties in spuriosity are broken by row order.

Across a model suite: the Pearson r of class-wise gaps for every model pair, and effective
robustness, ``acc_low - beta(acc_high)`` with beta the least-squares line of acc_low on acc_high
over the suite (appendix D).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet, planted_cue_masks
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, write_table
from ..stats import bootstrap_ci, mean_ci, trials_bootstrap_ci

K_GAP = 10  # paper: the 10 highest / lowest validation images per class


def spurious_features(annotations: pd.DataFrame) -> dict[int, list[int]]:
    """{class index: its features annotated spurious}, classes without one left out."""
    spur = annotations[annotations["label"] == "spurious"]
    return {int(c): sorted(int(j) for j in g["feature_index"]) for c, g in spur.groupby("class_index")}


def class_statistics(features: np.ndarray, labels: np.ndarray, spurious: dict[int, list[int]]) -> dict:
    """{class: (mu (|S(c)|,), sigma (|S(c)|,))} of the spurious features over the class's images.

    A feature constant on the class (sigma 0) gets sigma 1, so it contributes 0 instead of NaN.
    """
    stats = {}
    for c, feats in spurious.items():
        r = features[labels == c][:, feats].astype(np.float64)
        if not len(r):
            continue
        mu, sigma = r.mean(0), r.std(0)
        stats[c] = (mu, np.where(sigma > 0, sigma, 1.0))
    return stats


def spuriosity(features: np.ndarray, labels: np.ndarray, spurious: dict[int, list[int]], stats: dict) -> np.ndarray:
    """Spuriosity (N,) of every image for its own label's class; NaN where that class has no
    spurious feature (or no statistics)."""
    out = np.full(len(labels), np.nan)
    for c, feats in spurious.items():
        rows = np.flatnonzero(labels == c)
        if not len(rows) or c not in stats:
            continue
        mu, sigma = stats[c]
        out[rows] = ((features[rows][:, feats].astype(np.float64) - mu) / sigma).mean(1)
    return out


def rank_within_class(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank (N,) of each image within its class by decreasing spuriosity: 0 = highest; -1 where
    the score is NaN. Ties keep row order."""
    ranks = np.full(len(scores), -1, dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero((labels == c) & ~np.isnan(scores))
        order = rows[np.lexsort((rows, -scores[rows]))]
        ranks[order] = np.arange(len(order))
    return ranks


def high_low(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest- and k lowest-spuriosity rows among `rows` (fewer when the class is smaller).
    Disjoint whenever len(rows) >= 2k."""
    order = rows[np.lexsort((rows, -scores[rows]))]
    k = min(k, len(order))
    return order[:k], order[len(order) - k :]


def spurious_gaps(correct: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = K_GAP) -> pd.DataFrame:
    """Per class with scores: acc_high, acc_low, gap = acc_high - acc_low, n, k (docs/methods.md#spuriosity-rankings)."""
    rows = []
    for c in np.unique(labels[~np.isnan(scores)]):
        members = np.flatnonzero((labels == c) & ~np.isnan(scores))
        high, low = high_low(scores, members, k)
        a_hi, a_lo = float(correct[high].mean()), float(correct[low].mean())
        rows.append({"class_index": int(c), "acc_high": a_hi, "acc_low": a_lo, "gap": a_hi - a_lo,
                     "n": len(members), "k": len(high)})  # fmt: skip
    return pd.DataFrame(rows, columns=["class_index", "acc_high", "acc_low", "gap", "n", "k"])


def effective_robustness(acc_high: pd.Series, acc_low: pd.Series) -> pd.Series:
    """acc_low - beta(acc_high) per model (index), beta the least-squares line over the suite.

    Needs at least two models with distinct acc_high; otherwise NaN."""
    x, y = acc_high.to_numpy(float), acc_low.loc[acc_high.index].to_numpy(float)
    if len(x) < 2 or np.ptp(x) == 0:
        return pd.Series(np.nan, index=acc_high.index)
    slope, intercept = np.polyfit(x, y, 1)
    return pd.Series(y - (slope * x + intercept), index=acc_high.index)


def pearson_r(x, y) -> float:
    """Pearson r over the pairs where neither value is NaN; NaN when fewer than 3 pairs remain or
    either side is constant (r is undefined, or trivially +-1)."""
    from scipy.stats import pearsonr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(pearsonr(x[ok], y[ok])[0])


def gap_correlations(gaps: pd.DataFrame) -> pd.DataFrame:
    """Pearson r of class-wise gaps for every model pair; `gaps` is classes x models."""
    rows = []
    for a, b in combinations(gaps.columns, 2):
        n = int((gaps[a].notna() & gaps[b].notna()).sum())
        rows.append({"model_a": a, "model_b": b, "pearson_r": pearson_r(gaps[a], gaps[b]), "n_classes": n})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "pearson_r", "n_classes"])


def spuriosity_auc(scores: np.ndarray, labels: np.ndarray, cue_present: np.ndarray) -> dict[int, float]:
    """Ground truth: per class, the ROC-AUC with which spuriosity separates its images that show
    the class's planted cue from those that do not (NaN where one side is empty)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for c in np.unique(labels[~np.isnan(scores)]):
        rows = np.flatnonzero((labels == c) & ~np.isnan(scores))
        y = cue_present[rows].astype(bool)
        out[int(c)] = float(roc_auc_score(y, scores[rows])) if 0 < y.sum() < len(y) else float("nan")
    return out


RANKING_COLUMNS = ["set", "row", "id", "class_index", "class_name", "spuriosity", "rank", "cue_present"]


def scores_for_set(rankings: pd.DataFrame, set_name: str, n_rows: int) -> np.ndarray:
    """Spuriosity (n_rows,) of one set from a rankings table, in the set's row order (NaN where
    the image's class has no spurious feature)."""
    part = rankings[rankings["set"] == set_name]
    if part.empty:
        raise SpurlabError(f"rankings table: no rows for set '{set_name}'")
    if len(part) != n_rows or part["row"].max() >= n_rows:
        raise SpurlabError(f"rankings table: set '{set_name}' has {len(part)} rows, the feature cache {n_rows}")
    out = np.full(n_rows, np.nan)
    out[part["row"].to_numpy()] = part["spuriosity"].to_numpy(float)
    return out


def _id_strings(ids) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def check_set_ids(rankings: pd.DataFrame, set_name: str, ids, source) -> None:
    """Fail unless the rankings table's rows of `set_name` are exactly the images `ids` of `source`."""
    part = rankings[rankings["set"] == set_name].sort_values("row")
    if part["id"].astype(str).tolist() != _id_strings(ids):
        raise SpurlabError(f"{source}: image ids differ from the rankings table's set '{set_name}'; "
                           "they come from different image sets")  # fmt: skip


def _own_class_columns(fc, labels: np.ndarray, spurious: dict[int, list[int]]) -> np.ndarray:
    """Row x: the features S(label(x)) of its own class, in S's order, padded to max |S(c)| columns
    (rows of other classes hold unused values). Streamed in blocks; memory N x max |S(c)| (<= 5 with
    top-5 annotations), not N x |union of S(c)| (up to 630 columns with Salient ImageNet's answers,
    ~1.6 GB at 1.28M rows, twice while concatenating)."""
    m = max(len(f) for f in spurious.values())
    none = max(max(spurious), int(labels.max(initial=-1))) + 1  # a row for labels without S(c)
    idx = np.zeros((none + 1, m), dtype=np.int64)
    for c, feats in spurious.items():
        idx[c, : len(feats)] = feats
    lab = np.where((labels >= 0) & (labels < none), labels, none)
    out = np.empty((len(labels), m), dtype=fc.f["features"].dtype)
    for s, block in fc.blocks("features"):
        out[s : s + len(block)] = np.take_along_axis(block, idx[lab[s : s + len(block)]], axis=1)
    return out


def _cue_present(imageset, labels: np.ndarray) -> np.ndarray:
    """1.0 where an image shows its own class's planted cue, 0.0 where not, NaN where unknown
    (no planted cue for the class, or a set without ground truth)."""
    out = np.full(len(labels), np.nan)
    names, planted = imageset.class_names, planted_cue_masks(imageset)
    wanted = {c: [f"cue_{q}" for q in planted.get(name, [])] for c, name in enumerate(names)}
    wanted = {c: cues for c, cues in wanted.items() if cues and set(cues) <= set(imageset.meta_columns)}
    if not wanted:
        return out
    meta = imageset.meta(sorted({q for cues in wanted.values() for q in cues}))
    for c, cues in wanted.items():
        rows = np.flatnonzero(labels == c)
        out[rows] = meta[cues].to_numpy()[rows].any(1).astype(float)
    return out


@dataclass(frozen=True)
class RankingSettings(Settings):
    """Stage `spuriosity_rankings` (config `spuriosity`): the set whose class statistics z-score
    every ranked set."""

    SECTION = "spuriosity"
    stats_set: str = "train"


def run_rankings(annotations_path, model_dir, features: dict[str, str], imagesets: dict[str, str], out,
                 settings: RankingSettings = RankingSettings()) -> dict:  # fmt: skip
    """Stage `spuriosity_rankings`: spuriosity and within-class rank of every image of each set.

    `features` / `imagesets` map set names to the discovery model's feature caches and the image
    sets; class statistics come from `settings.stats_set`. Writes the rankings table (RANKING_COLUMNS)."""
    stats_set = settings.stats_set
    if stats_set not in features:
        raise SpurlabError(f"config key spuriosity.stats_set: '{stats_set}' is not among the ranked sets")
    annotations = read_table(annotations_path, columns=["class_index", "feature_index", "label"])
    spurious = spurious_features(annotations)
    if not spurious:
        raise SpurlabError(f"{annotations_path}: no (class, feature) pair is annotated spurious; nothing to rank")
    local = {c: list(range(len(feats))) for c, feats in spurious.items()}  # columns of _own_class_columns
    data = {}
    for name, path in features.items():
        imageset = ImageSet(imagesets[name])
        with open_features(path, model_dir=model_dir, imageset=imageset) as fc:
            labels = fc["labels"]
            data[name] = (_own_class_columns(fc, labels, spurious), labels, fc["index"], fc.class_names, imageset)
    stats = class_statistics(data[stats_set][0], data[stats_set][1], local)
    frames = []
    for name, (values, labels, ids, class_names, imageset) in data.items():
        scores = spuriosity(values, labels, local, stats)
        frames.append(pd.DataFrame({
            "set": name, "row": np.arange(len(labels), dtype=np.int64),
            "id": _id_strings(ids),
            "class_index": labels.astype(np.int64),
            "class_name": [class_names[c] if 0 <= c < len(class_names) else "" for c in labels],
            "spuriosity": scores, "rank": rank_within_class(scores, labels),
            "cue_present": _cue_present(imageset, labels),
        }))  # fmt: skip
    table = pd.concat(frames, ignore_index=True)[RANKING_COLUMNS]
    provenance = {
        "annotations_sha256": sha256_file(annotations_path),
        "checkpoint_sha256": model_checkpoint_sha256(model_dir),
        "features_sha256": {name: sha256_file(p) for name, p in features.items()},
        "stats_set": stats_set,
        "spurious_features": {str(c): f for c, f in spurious.items()},
    }
    write_table(table, out, provenance)
    return {"sets": list(features), "classes": len(spurious), "rows": len(table)}


def read_rankings(path, annotations_path=None) -> pd.DataFrame:
    """The rankings table; with `annotations_path`, fail unless it was made from that table."""
    expect = {"annotations_sha256": sha256_file(annotations_path)} if annotations_path else None
    return read_table(path, expect=expect, columns=RANKING_COLUMNS)


@dataclass(frozen=True)
class GapSettings(Settings):
    """Stage `spurious_gaps` (config `spuriosity`): the ranked set the gaps are measured on, and k,
    the images at each end of a class's ranking."""

    SECTION = "spuriosity"
    KEYS = {"seed": "seed"}
    gap_set: str = "val"  # the paper's: validation
    k: int = K_GAP
    seed: int = 0  # the bootstrap intervals' (docs/methods.md#bootstrap-intervals)


GAP_CI_METRICS = ("acc", "acc_high", "acc_low", "mean_gap")


def end_cells(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cells): every ranked class's k highest and k lowest rows (`high_low`), and each row's
    cell, 2q + 1 for the high end of the q-th ranked class, 2q for its low end."""
    rows, cells = [], []
    for q, c in enumerate(np.unique(labels[~np.isnan(scores)])):
        high, low = high_low(scores, np.flatnonzero((labels == c) & ~np.isnan(scores)), k)
        rows += [high, low]
        cells += [np.full(len(high), 2 * q + 1), np.full(len(low), 2 * q)]
    return tuple(np.concatenate(a).astype(int) if a else np.zeros(0, int) for a in (rows, cells))


def end_accuracies(hit: np.ndarray, cells: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ranked class: (accuracy on its high end, on its low end), from each row's hit and cell."""
    acc = np.bincount(cells, hit, n_cells) / np.maximum(np.bincount(cells, minlength=n_cells), 1)
    return acc[1::2], acc[0::2]


def gap_cis(correct: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int, seed: int, key: str,
            metrics=GAP_CI_METRICS) -> dict:  # fmt: skip
    """`<metric>_ci_low` / `_ci_high` of `metrics` (acc, acc_high, acc_low, mean_gap) on one set:
    the bootstrap intervals (`spurlab.stats`) with each class's k highest and k lowest images
    resampled within their class and end (acc: every labelled image, the whole set)."""
    rows, cells = end_cells(scores, labels, k)
    hit = correct[rows].astype(float)
    n_cells = int(cells.max()) + 1 if len(cells) else 0

    def ends(h, c):
        return end_accuracies(h, c, n_cells)

    stats = {"acc_high": lambda h, c: float(ends(h, c)[0].mean()), "acc_low": lambda h, c: float(ends(h, c)[1].mean()),
             "mean_gap": lambda h, c: float(np.subtract(*ends(h, c)).mean())}  # fmt: skip
    out = {}
    for name in metrics:
        if name == "acc":
            out[name] = mean_ci(correct[labels >= 0], seed, f"acc-{key}")
        else:
            out[name] = bootstrap_ci([hit, cells], stats[name], seed, f"{name}-{key}", strata=cells)
    return {f"{m}_ci_{side}": (ci[i] if ci else float("nan")) for m, ci in out.items()
            for i, side in enumerate(("low", "high"))}  # fmt: skip


def _end_gap(hit: np.ndarray, high: np.ndarray) -> float:
    return float(hit[high].mean() - hit[~high].mean())


def class_gap_cis(correct: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int, seed: int,
                  key: str) -> pd.DataFrame:  # fmt: skip
    """Per ranked class: `gap_ci_low` / `gap_ci_high`, the bootstrap interval of its gap, with its
    k highest and its k lowest images resampled each within their end (stratified; NaN where
    neither end has two images)."""
    rows = []
    ends, cells = end_cells(scores, labels, k)
    for q, c in enumerate(np.unique(labels[~np.isnan(scores)])):
        mine = cells // 2 == q  # the class's high end, then its low end
        hit, end = correct[ends[mine]].astype(float), cells[mine] % 2 == 1
        ci = bootstrap_ci([hit, end], _end_gap, seed, f"class-gap-{key}-{int(c)}", strata=end)
        rows.append({"class_index": int(c), "gap_ci_low": ci[0] if ci else np.nan,
                     "gap_ci_high": ci[1] if ci else np.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=["class_index", "gap_ci_low", "gap_ci_high"])


def trial_gap_cis(correct: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int, seed: int,
                  key: str) -> dict:  # fmt: skip
    """`acc_trials_ci_*` and `gap_trials_ci_*` (low, high): the bootstrap intervals of the mean
    over trials of the accuracy and of the mean gap, from `correct` (trials x images: each trial's
    head scored on the same set). Each resample draws the images (for the gap each class's k
    highest and k lowest within their class and end, for acc every labelled image) and, with
    several trials, the trials (`spurlab.stats.trials_bootstrap_ci`)."""
    correct = np.atleast_2d(np.asarray(correct))
    rows, cells = end_cells(scores, labels, k)
    n_cells = int(cells.max()) + 1 if len(cells) else 0

    def mean_gap(h, c):
        return float(np.subtract(*end_accuracies(h, c, n_cells)).mean())

    labelled = correct[:, labels >= 0].astype(float)
    cis = {"acc": trials_bootstrap_ci(labelled, np.mean, seed, f"acc-trials-{key}"),
           "gap": trials_bootstrap_ci(correct[:, rows].astype(float), mean_gap, seed, f"gap-trials-{key}",
                                      strata=cells, shared=[cells]) if len(rows) else None}  # fmt: skip
    return {f"{m}_trials_ci_{side}": (ci[i] if ci else float("nan")) for m, ci in cis.items()
            for i, side in enumerate(("low", "high"))}  # fmt: skip


def effective_robustness_cis(correct: dict[str, np.ndarray], scores: np.ndarray, labels: np.ndarray, k: int,
                             seed: int) -> dict[str, list | None]:  # fmt: skip
    """Per model: the bootstrap interval of its `effective_robustness`. Every model is scored on the
    same images, so one resample serves all: each ranked class's k highest and k lowest images are
    drawn within their class and end (`end_cells`), every model's end accuracies recomputed and the
    suite's line refitted. None with fewer than two models or nothing to resample."""
    names = list(correct)
    rows, cells = end_cells(scores, labels, k)
    if len(names) < 2 or not len(rows):
        return dict.fromkeys(names)
    hits = np.column_stack([np.asarray(correct[m])[rows].astype(float) for m in names])
    n_cells = int(cells.max()) + 1

    def residual(j: int):
        def stat(h, c):
            ends = [end_accuracies(h[:, i], c, n_cells) for i in range(h.shape[1])]
            high = pd.Series([e[0].mean() for e in ends], index=names)
            return float(effective_robustness(high, pd.Series([e[1].mean() for e in ends], index=names)).iloc[j])

        return stat

    return {m: bootstrap_ci([hits, cells], residual(j), seed, f"effective-robustness-{m}", strata=cells,
                            drop_undefined=True) for j, m in enumerate(names)}  # fmt: skip


def run_gaps(rankings_path, models: dict[str, tuple[str, str]], out_gaps, out_models, out_correlations,
             settings: GapSettings = GapSettings()) -> dict:  # fmt: skip
    """Stage `spurious_gaps`: every model's class-wise gap on `settings.gap_set`, the suite's
    effective robustness and the pairwise gap correlations.

    `models` maps model names to (model directory, feature cache of the gap set)."""
    gap_set, k = settings.gap_set, settings.k
    rankings = read_rankings(rankings_path)
    names = rankings.drop_duplicates("class_index").set_index("class_index")["class_name"]
    per_class, per_model, hits, set_labels = [], [], {}, None
    for name, (model_dir, path) in models.items():
        with open_features(path, model_dir=model_dir) as fc:
            preds, labels = fc["preds"], fc["labels"]
        if hits and not np.array_equal(labels, set_labels):  # one resample of the images serves every model
            raise SpurlabError(f"{path}: not a cache of the same {gap_set} images as the other models' caches")
        set_labels = labels
        scores = scores_for_set(rankings, gap_set, len(labels))
        correct = hits[name] = preds == labels
        g = spurious_gaps(correct, scores, labels, k)
        g = g.merge(class_gap_cis(correct, scores, labels, k, settings.seed, key=name), on="class_index", how="left")
        g.insert(0, "model", name)
        g.insert(2, "class_name", g["class_index"].map(names))
        per_class.append(g)
        per_model.append({"model": name, "acc": float(correct[labels >= 0].mean()),
                          "acc_high": float(g["acc_high"].mean()), "acc_low": float(g["acc_low"].mean()),
                          "mean_gap": float(g["gap"].mean()), "n_classes": len(g),
                          **gap_cis(correct, scores, labels, k, settings.seed, key=name)})  # fmt: skip
    gaps = pd.concat(per_class, ignore_index=True)
    suite = pd.DataFrame(per_model).set_index("model")
    suite["effective_robustness"] = effective_robustness(suite["acc_high"], suite["acc_low"])
    cis = effective_robustness_cis(hits, scores, labels, k, settings.seed)
    for i, side in enumerate(("low", "high")):
        suite[f"effective_robustness_ci_{side}"] = [cis[m][i] if cis[m] else np.nan for m in suite.index]
    wide = gaps.pivot(index="class_index", columns="model", values="gap")[list(models)]
    corr = gap_correlations(wide)
    provenance = {
        "rankings_sha256": sha256_file(rankings_path),
        "checkpoint_sha256": {n: model_checkpoint_sha256(d) for n, (d, _) in models.items()},
        "gap_set": gap_set,
        "k": int(k),
    }
    write_table(gaps, out_gaps, provenance)
    write_table(suite.reset_index(), out_models, provenance)
    write_table(corr, out_correlations, provenance)
    return {"models": len(models), "classes": int(wide.shape[0]),
            "gap_correlation_mean": float(corr["pearson_r"].mean()) if len(corr) else float("nan")}  # fmt: skip
