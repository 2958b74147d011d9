"""Neural feature importance (Singla & Feizi 2022, Def. 1; docs/methods.md#neural-feature-importance).

    IV[k, j] = mean_{x in G_k} phi_j(x) * W[k, j]        (the bias is ignored)

with G_k the images the model *predicts* as class k (the paper's default, `grouping="prediction"`)
or the images *labelled* k (`grouping="label"`; Spuriosity Rankings additionally keeps only the
correctly classified ones, `grouping="correct"`). The top-k features of class k by IV (paper:
k = 5; Spuriosity Rankings inspects 15) are the candidates for annotation.

A class whose group is empty (no image predicted as it, say) has IV = 0 everywhere: its "top
features" would be arbitrary. Such a class gets none: its row of `top` is -1, it is listed in
`empty_classes`, left out of the top-feature table (and so of D(i, j), annotation and the task
pages), and named in a warning on stderr. A set in which every class's group is empty is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..data.feature_cache import open_features
from ..errors import SpurlabError
from ..io import atomic_path, create_h5, open_h5, sha256_file
from ..io.tables import write_table

GROUPINGS = ("prediction", "label", "correct")
# Rows per streamed block: each block is copied twice in float64 (rows x D x 8 bytes: 134 MB at
# D = 2048). bench/analysis_scale.py, D = 2048, 1000 classes: peak RSS 1450 MiB at 128k and at 640k
# rows; 65536-row blocks peaked at 3592 MiB (128k rows).
BLOCK_ROWS = 8192


def class_feature_means(blocks, num_classes: int, grouping: str = "prediction") -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean of phi over G_k, streamed: `blocks` yields (features, preds, labels) row blocks.

    Returns (means (C, D) float64, counts (C,)); a class with an empty group has a zero row.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, not {grouping!r}")
    sums, counts = None, np.zeros(num_classes, dtype=np.int64)
    for feats, preds, labels in blocks:
        if grouping == "prediction":
            group = preds
        elif grouping == "label":
            group = labels
        else:
            group = np.where(preds == labels, labels, -1)
        keep = (group >= 0) & (group < num_classes)
        if sums is None:
            sums = np.zeros((num_classes, feats.shape[1]), dtype=np.float64)
        g, f = group[keep], feats[keep].astype(np.float64)
        if len(g):  # sort rows by class, then one reduceat: fast for any number of classes
            order = np.argsort(g, kind="stable")
            gs = g[order]
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            sums[gs[starts]] += np.add.reduceat(f[order], starts, axis=0)
        counts += np.bincount(g, minlength=num_classes)
    if sums is None:
        raise ValueError("no feature rows to average")
    return sums / np.maximum(counts, 1)[:, None], counts


def feature_importance(means: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """IV (C, D) from the per-class mean features and the head weight W (C, D)."""
    return means * weight.astype(np.float64)


def top_features(iv: np.ndarray, k: int) -> np.ndarray:
    """(C, k) feature indices by decreasing IV; ties broken by the lower index (stable)."""
    order = np.argsort(-iv, axis=1, kind="stable")
    return order[:, :k]


FORMAT = "spurlab.importance"
GROUP_WORDS = {"prediction": "predicted as", "label": "labelled", "correct": "correctly classified as"}


def empty_classes(counts: np.ndarray) -> np.ndarray:
    """Indices (int64, ascending) of the classes whose group is empty: they get no top features."""
    return np.flatnonzero(np.asarray(counts) == 0).astype(np.int64)


@dataclass(frozen=True)
class ImportanceSettings(Settings):
    """Stage `importance` (config `salient`): images grouped by `grouping` (GROUPINGS), the `top_k`
    features of each class kept."""

    SECTION = "salient"
    grouping: str = "prediction"  # the paper's: images predicted as the class
    top_k: int = 5  # the paper's


def run_importance(
    features_path, model_dir, out_h5, out_table, settings: ImportanceSettings = ImportanceSettings()
) -> dict:
    """Stage `importance`: IV from a cached feature file of the model in `model_dir` (its head W).

    Writes `out_h5` (iv (C, D), counts (C,), top (C, k), empty_classes (E,); attrs: the cache's
    checkpoint and image-set hashes) and `out_table` (.parquet + .csv: one row per class with top
    features and rank, rank 1 the most important; provenance `empty_classes`, the indices left out).
    """
    import json
    import sys

    import pandas as pd

    from ..models.factory import load_model

    grouping, top_k = settings.grouping, settings.top_k
    model, _ = load_model(model_dir)
    weight = model.head()[0].detach().cpu().numpy()
    with open_features(features_path, model_dir=model_dir) as fc:
        num_classes, d = weight.shape
        if top_k > d:
            raise SpurlabError(f"config key salient.top_k: {top_k} exceeds the model's {d} features")
        blocks = (
            (feats, fc.f["preds"][s : s + len(feats)], fc.f["labels"][s : s + len(feats)])
            for s, feats in fc.blocks("features", rows=BLOCK_ROWS)
        )
        means, counts = class_feature_means(blocks, num_classes, grouping)
        attrs = {k: fc.attrs[k] for k in ("checkpoint_sha256", "imageset", "imageset_sha256")}
        names = fc.class_names
    empty = empty_classes(counts)
    what = GROUP_WORDS[grouping]
    if len(empty) == num_classes:
        raise SpurlabError(f"{features_path}: no image is {what} any of the {num_classes} classes "
                           f"(salient.grouping: {grouping}); no class has top features")  # fmt: skip
    if len(empty):
        listed = ", ".join(names[i] for i in empty[:20]) + (f" and {len(empty) - 20} more" if len(empty) > 20 else "")
        print(f"warning: {features_path}: {len(empty)} of {num_classes} classes get no top features, no image is "
              f"{what} them (salient.grouping: {grouping}): {listed}", file=sys.stderr)  # fmt: skip
    iv = feature_importance(means, weight)
    top = top_features(iv, top_k)
    top[empty] = -1
    with atomic_path(out_h5) as tmp, create_h5(tmp) as f:
        for name, arr in (("iv", iv), ("counts", counts), ("top", top), ("empty_classes", empty)):
            f.create_dataset(name, data=arr, track_times=False)
        f.attrs.update(format=FORMAT, grouping=grouping, top_k=top_k, class_names=json.dumps(names), **attrs)
    skip = set(empty.tolist())
    rows = [
        {"class_index": i, "class_name": names[i], "rank": r + 1, "feature_index": int(j),
         "importance": float(iv[i, j]), "group_size": int(counts[i])}
        for i in range(num_classes) if i not in skip for r, j in enumerate(top[i])
    ]  # fmt: skip
    table = pd.DataFrame(
        rows, columns=["class_index", "class_name", "rank", "feature_index", "importance", "group_size"]
    )
    write_table(table, out_table, {"importance_sha256": sha256_file(out_h5), **attrs,
                                   "empty_classes": [int(i) for i in empty]})  # fmt: skip
    return {"classes": num_classes - len(empty), "empty_groups": len(empty),
            "empty_classes": [names[i] for i in empty]}  # fmt: skip


def read_importance(path, expect_checkpoint_sha256: str | None = None) -> dict:
    """iv, counts, top, empty_classes and attrs of an importance file; checks the model it was
    computed for. `top` rows of the classes in `empty_classes` are -1 (no top features)."""
    with open_h5(path, FORMAT, "importance file") as f:
        out = {name: f[name][:] for name in ("iv", "counts", "top")}
        # a file from before `empty_classes` gave every class top features
        out["empty_classes"] = f["empty_classes"][:] if "empty_classes" in f else np.zeros(0, np.int64)
        out["attrs"] = dict(f.attrs)
    if expect_checkpoint_sha256 and out["attrs"]["checkpoint_sha256"] != expect_checkpoint_sha256:
        raise SpurlabError(f"{path}: computed for another checkpoint than the one given; recompute it")
    return out
