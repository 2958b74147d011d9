"""Spurious score (Neuhaus et al. 2023, "Spurious Features Everywhere", sec. 7.2; docs/methods.md#spurious-score).

Per class k: positives are the test images of class k, negatives the images that show class k's
spurious cue but no class-k object (Spurious ImageNet; here the benchmark's `cue_only` images with
the class's planted cue, a cue-only folder set in the Spurious ImageNet layout, or the images
retrieved for k by `discover.retrieval`); the score of an
image is the model's predicted probability of k. The paper's text reports the ROC-AUC
(`spurious_auc`); its reference code computes the average precision (`spurious_ap`): both are
reported, per class and as the mean over classes (scikit-learn's `roc_auc_score`,
`average_precision_score`). A model that is not fooled by the cue scores 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bootstrap_ci

COLUMNS = ("class", "n_pos", "n_neg", "spurious_auc", "spurious_ap")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (float64) of a logit table, rows summing to 1."""
    from scipy.special import softmax as _softmax

    return _softmax(np.asarray(logits, dtype=np.float64), axis=1)


def class_score(p_pos: np.ndarray, p_neg: np.ndarray) -> tuple[float, float]:
    """(ROC-AUC, AP) of separating positives from negatives by the probability of the class."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not len(p_pos) or not len(p_neg):
        return float("nan"), float("nan")
    y = np.r_[np.ones(len(p_pos)), np.zeros(len(p_neg))]
    s = np.r_[p_pos, p_neg]
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def spurious_scores(probs_pos: np.ndarray, labels_pos: np.ndarray, probs_neg: np.ndarray,
                    negatives: dict[int, np.ndarray]) -> pd.DataFrame:  # fmt: skip
    """Per class k of `negatives` ({k: row indices into probs_neg}): positives are the rows of
    `probs_pos` with label k. Returns one row per class (COLUMNS)."""
    rows = []
    for k, neg in sorted(negatives.items()):
        pos = np.flatnonzero(np.asarray(labels_pos) == k)
        auc, ap = class_score(probs_pos[pos, k], probs_neg[np.asarray(neg, dtype=np.int64), k])
        rows.append({"class": int(k), "n_pos": len(pos), "n_neg": len(neg), "spurious_auc": auc, "spurious_ap": ap})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def mean_scores(table: pd.DataFrame) -> dict:
    """Class means (classes with both positives and negatives)."""
    ok = table.dropna(subset=["spurious_auc"])
    return {"spurious_auc": float(ok["spurious_auc"].mean()) if len(ok) else None,
            "spurious_ap": float(ok["spurious_ap"].mean()) if len(ok) else None, "classes": int(len(ok))}  # fmt: skip


def mean_auc(score: np.ndarray, cls: np.ndarray, positive: np.ndarray) -> float:
    """The mean over classes of the ROC-AUC (by ranks, ties averaged, as roc_auc_score) separating
    each class's positives from its negatives by `score`; classes with one side empty left out."""
    from scipy.stats import rankdata

    aucs = []
    for k in np.unique(cls):
        sel = cls == k
        y = positive[sel].astype(bool)
        n1, n0 = int(y.sum()), int((~y).sum())
        if n1 and n0:
            aucs.append((rankdata(score[sel])[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return float(np.mean(aucs)) if aucs else float("nan")


def mean_auc_ci(probs_pos: np.ndarray, labels_pos: np.ndarray, probs_neg: np.ndarray, negatives: dict[int, np.ndarray],
                seed: int, key: str) -> list | None:  # fmt: skip
    """The bootstrap interval of `mean_scores`' spurious AUC (the classes of `spurious_scores`):
    each class's positives and its negatives resampled within the class and side
    (docs/methods.md#bootstrap-intervals)."""
    score, cls, pos = [], [], []
    for k, neg in sorted(negatives.items()):
        p = np.flatnonzero(np.asarray(labels_pos) == k)
        neg = np.asarray(neg, dtype=np.int64)
        if len(p) and len(neg):
            score += [probs_pos[p, k], probs_neg[neg, k]]
            cls.append(np.full(len(p) + len(neg), int(k)))
            pos += [np.ones(len(p)), np.zeros(len(neg))]
    if not cls:
        return None
    cls, pos = np.concatenate(cls), np.concatenate(pos)
    return bootstrap_ci([np.concatenate(score), cls, pos], mean_auc, seed, key, strata=cls * 2 + pos.astype(int))


def cue_only_negatives(imageset, planted: dict[str, list[str]]) -> dict[int, np.ndarray]:
    """{class k: rows of a cue-only set that show k's spurious feature without class k}.

    A folder set (ImageSet kind "index", Spurious ImageNet layout `cue_only/<class folder>/*.jpg`,
    indexed with the model's class-name/synset file): the images in class k's folder show k's
    spurious feature but not k, so k's negatives are the rows labelled k (`planted` is not used).
    The generated set: the rows whose planted `cue_*` flag of one of k's cues is set and whose
    label is not k (ground truth flags)."""
    if imageset.kind == "index":
        labels = np.asarray(imageset.labels)
        return {int(k): np.flatnonzero(labels == k) for k in np.unique(labels[labels >= 0])}
    names = imageset.class_names
    out = {}
    for cname, cues in planted.items():
        cols = [f"cue_{c}" for c in cues if f"cue_{c}" in imageset.meta_columns]
        if cname in names and cols:
            flags = imageset.meta(cols).to_numpy().astype(bool).any(1) & (imageset.labels != names.index(cname))
            out[names.index(cname)] = np.flatnonzero(flags)
    return out
