"""Harmfulness validation and cue-only retrieval: the Spurious ImageNet construction (Neuhaus et
al. 2023, secs. 4 and 6; docs/methods.md#annotation, #spurious-score).

Harmful (sec. 3): a spurious feature is *harmful* when it alone triggers the class. The paper
validates each annotated component with ten real images that show the feature but not the class,
all classified as the class. Here, on a validation set kept apart from the retrieval pool and the
measurement sets: of the `top` (10) images not labelled k with the highest alpha_l, the fraction
the model predicts as k is the component's *harm rate*; it is harmful when that fraction reaches
`min_fraction` (0.6, a majority of the ten: ours, the paper curates by hand). Only harmful
components are retrieved for and removed by SpuFix: a component that is off the object but does
not by itself move the decision (e.g. ordinary background variation of the class) is a feature
SpuFix should leave alone. A published list is taken as validated already; its harm rates are
still reported. Without a validation set every annotated spurious component counts as harmful.

For class k and each of its harmful spurious neural PCA components l: rank an out-of-class pool
(images whose label is not k: other classes' images, cue-only images, any folder indexed as an
image set) by alpha_l (eq. 5, from the robust model's cached features), keep those the model
predicts as k, the first `max_images` (the paper keeps 75 per class after a human check). Images found for several components of a class are kept once (highest alpha).

On the planted-cue benchmark each kept image is checked against ground truth: it must show the
class's planted cue (its `cue_<name>` flag) and not the class object (its label is not k); the
fraction that does is the retrieval precision. The kept images are saved as a packed image set
(label k, `meta/source_set`, `meta/source_row`, `meta/component`, `meta/alpha`, `meta/has_cue`),
which the spurious score (docs/methods.md#spurious-score) reads as class k's negatives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet, planted_cue_masks, write_imageset
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, write_table
from .components import read_component_lists
from .npca import NPCABases, alphas, weighted_features

MAX_IMAGES = 75  # paper: 75 images per class in Spurious ImageNet
HARM_TOP = 10  # paper: ten images showing only the spurious feature, each classified as the class
HARM_MIN_FRACTION = 0.6  # a majority of the ten
HARMFUL_COLUMNS = ("class", "class_name", "component", "source", "harm_rate", "harmful")
TABLE_COLUMNS = ("class", "class_name", "component", "source_set", "source_row", "id", "alpha", "retrieval_rank",
                 "has_cue", "object_absent")  # fmt: skip


def retrieve(
    alpha: np.ndarray, labels: np.ndarray, preds: np.ndarray, k: int, max_images: int = MAX_IMAGES
) -> np.ndarray:
    """Pool positions, by decreasing alpha, of images not labelled k that the model predicts as k."""
    ok = np.flatnonzero((np.asarray(labels) != k) & (np.asarray(preds) == k))
    return ok[np.argsort(-np.asarray(alpha)[ok], kind="stable")][:max_images]


def harm_rate(alpha: np.ndarray, labels: np.ndarray, preds: np.ndarray, k: int, top: int = HARM_TOP) -> float:
    """Of the `top` images not labelled k with the highest alpha, the fraction predicted as k (NaN if none)."""
    out = np.flatnonzero(np.asarray(labels) != k)
    if not len(out):
        return float("nan")
    best = out[np.argsort(-np.asarray(alpha)[out], kind="stable")[:top]]
    return float((np.asarray(preds)[best] == k).mean())


def harmful_components(table: pd.DataFrame) -> dict[int, list[int]]:
    """{class: [harmful component indices]} from the harmfulness table of `run_retrieval`."""
    sel = table[table["harmful"].astype(bool)]
    return {int(k): sorted(int(x) for x in g["component"]) for k, g in sel.groupby("class")}


def cue_truth(imageset, rows: np.ndarray, cues: list[str]) -> np.ndarray | None:
    """Per row: does the image show any of `cues` (its cue_<name> metadata flags)? None without."""
    cols = [f"cue_{c}" for c in cues]
    if not cues or any(c not in imageset.meta_columns for c in cols):
        return None
    meta = imageset.meta(cols)
    return meta.to_numpy().astype(bool).any(1)[rows]


def spurious_components(pairs: pd.DataFrame) -> dict[int, list[int]]:
    """{class: [component indices labelled spurious]} from the npca pair table."""
    comp = pairs[(pairs["kind"] == "component") & (pairs["label"] == "spurious")]
    return {int(k): sorted(int(x) for x in g["feature"]) for k, g in comp.groupby("class")}


def _open_pool(pool: dict[str, tuple[str, str]], model_dir) -> tuple[dict, dict]:
    """The pool's image sets and the model's (features, labels, preds, index) of each; they must
    share classes and image size."""
    sets, feats = {}, {}
    for name, (set_path, feat_path) in pool.items():
        sets[name] = ImageSet(set_path)
        with open_features(feat_path, model_dir=model_dir, imageset=sets[name]) as fc:
            feats[name] = (fc["features"], fc["labels"], fc["preds"], fc["index"])
    first = next(iter(sets.values()))
    for name, s in sets.items():
        if s.class_names != first.class_names or s.image_size != first.image_size:
            raise SpurlabError(f"{s.path}: pool set {name} has other classes or image size than {first.path}")
    return sets, feats


def _open_validation(validation: tuple[str, str], model_dir, first: ImageSet) -> tuple[tuple, ImageSet]:
    """The validation set's (features, labels, preds) and the set (same classes as the pool)."""
    val_set = ImageSet(validation[0])
    if val_set.class_names != first.class_names:
        raise SpurlabError(f"{val_set.path}: validation set has other classes than {first.path}")
    with open_features(validation[1], model_dir=model_dir, imageset=val_set) as fc:
        return (fc["features"], fc["labels"], fc["preds"]), val_set


def _best_images(k: int, comps: list[int], feats: dict, basis: tuple, max_images: int) -> list:
    """Class k's retrieved images over its components: ((set name, row), (alpha, component, id)),
    by decreasing alpha, each image once (its highest alpha), the first max_images."""
    W, mu, V = basis
    best = {}
    for l in comps:
        cand = []
        for name, (phi, labels, preds, ids) in feats.items():
            al = alphas(weighted_features(phi, W, k), mu.astype(np.float64), V[l : l + 1].astype(np.float64))[:, 0]
            for p in retrieve(al, labels, preds, k, max_images):
                cand.append((al[p], name, int(p), ids[p]))
        cand.sort(key=lambda c: -c[0])
        for a, name, p, i in cand[:max_images]:
            if (name, p) not in best or best[(name, p)][0] < a:
                best[(name, p)] = (a, l, i)
    return sorted(best.items(), key=lambda kv: -kv[1][0])[:max_images]


def _truth_columns(table: pd.DataFrame, sets: dict, feats: dict, planted: dict, names: list[str]):
    """Per retrieved image: has_cue (its class's planted cue shown) and object_absent (not of the
    class), NaN where the set has no planted truth."""
    has_cue = np.full(len(table), np.nan)
    absent = np.full(len(table), np.nan)
    for name, s in sets.items():
        sel = np.flatnonzero(table["source_set"].to_numpy() == name)
        for k in np.unique(table["class"].to_numpy()[sel]) if len(sel) else []:
            idx = sel[table["class"].to_numpy()[sel] == k]
            truth = cue_truth(s, table["source_row"].to_numpy()[idx], planted.get(names[k], []))
            if truth is not None:
                has_cue[idx] = truth
                absent[idx] = feats[name][1][table["source_row"].to_numpy()[idx]] != k
    return has_cue, absent


def _retrieval_table(rows: list[dict], sets: dict, feats: dict, planted: dict, names: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if c not in ("has_cue", "object_absent")])
    table = table.astype({"class": np.int64, "component": np.int64, "source_row": np.int64, "alpha": np.float64,
                          "retrieval_rank": np.int64, "class_name": str, "source_set": str, "id": str})  # fmt: skip
    table["has_cue"], table["object_absent"] = _truth_columns(table, sets, feats, planted, names)
    return table


@dataclass(frozen=True)
class RetrievalSettings(Settings):
    """Stage `npca_retrieval` (config `npca.retrieval`): images kept per class, the harmfulness
    check's images per component and the fraction of them that makes a component harmful, and
    an optional published component list (npca.published_components, `components.read_component_lists`)
    used instead of the annotated spurious components."""

    SECTION = "npca.retrieval"
    KEYS = {"published_components": "npca.published_components"}
    max_images: int = MAX_IMAGES
    validation_top: int = HARM_TOP
    harmful_fraction: float = HARM_MIN_FRACTION
    published_components: str | None = None


def run_retrieval(model_dir, bases_path, pairs_path, pool: dict[str, tuple[str, str]], out_set, out_table,
                  settings: RetrievalSettings = RetrievalSettings(), validation: tuple[str, str] | None = None,
                  out_harmful=None) -> dict:  # fmt: skip
    """Stage `npca_retrieval`. `pool`: {set name: (image set path, the robust model's feature cache
    of it)}; `validation`: (image set, feature cache) of the harmfulness check, whose per-component
    table goes to `out_harmful` (module docstring)."""
    max_images, published = settings.max_images, settings.published_components
    harm_top, harm_min_fraction = settings.validation_top, settings.harmful_fraction
    from ..models.factory import load_model

    sha = model_checkpoint_sha256(model_dir)
    bases_sha = sha256_file(bases_path)
    pairs = read_table(pairs_path, expect={"bases_sha256": bases_sha})
    spurious = read_component_lists(published) if published else spurious_components(pairs)
    model, _ = load_model(model_dir)
    W = model.head()[0].detach().double().numpy()
    sets, feats = _open_pool(pool, model_dir)
    first = next(iter(sets.values()))
    names, size = first.class_names, first.image_size
    planted = planted_cue_masks(first)
    val = None
    if validation is not None:
        val, val_set = _open_validation(validation, model_dir, first)
    rows, harm_rows = [], []
    with NPCABases(bases_path, sha) as bases:
        for k, comps in sorted(spurious.items()):
            if k not in bases.classes:
                raise SpurlabError(f"{published or pairs_path}: class {k} has no neural PCA basis in {bases_path}")
            mu, V, _ = bases.get(k)
            if comps and max(comps) >= len(V):
                raise SpurlabError(f"{published or pairs_path}: class {k}: component {max(comps)} >= the {len(V)} kept")
            rates = {l: float("nan") for l in comps}
            if val is not None and comps:
                al = alphas(weighted_features(val[0], W, k), mu.astype(np.float64), V[sorted(comps)].astype(np.float64))
                rates = {l: harm_rate(al[:, i], val[1], val[2], k, harm_top) for i, l in enumerate(sorted(comps))}
            ok = {l: published is not None or val is None or rates[l] >= harm_min_fraction for l in comps}
            harm_rows += [{"class": k, "class_name": names[k], "component": l, "harm_rate": rates[l], "harmful": ok[l],
                           "source": "published" if published else "annotated"} for l in sorted(comps)]  # fmt: skip
            kept = _best_images(k, [l for l in sorted(comps) if ok[l]], feats, (W, mu, V), max_images)
            for r, ((name, p), (a, l, i)) in enumerate(kept, 1):
                rows.append({"class": k, "class_name": names[k], "component": l, "source_set": name, "source_row": p,
                             "id": i.decode() if isinstance(i, bytes) else str(i), "alpha": float(a),
                             "retrieval_rank": r})  # fmt: skip
    table = _retrieval_table(rows, sets, feats, planted, names)
    _write_set(out_set, table, sets=sets, names=names, size=size)
    provenance = {"bases_sha256": bases_sha, "pairs_sha256": sha256_file(pairs_path), "checkpoint_sha256": sha,
                  "pool": {n: s.sha256 for n, s in sets.items()}, "max_images": max_images,
                  "published_sha256": sha256_file(published) if published else None,
                  "retrieved_set_sha256": ImageSet(out_set).sha256,
                  "validation": None if val is None else {"set_sha256": val_set.sha256, "features_sha256": sha256_file(validation[1]),
                                                          "top": harm_top, "min_fraction": harm_min_fraction}}  # fmt: skip
    write_table(table, out_table, provenance)
    harmful = pd.DataFrame(harm_rows, columns=list(HARMFUL_COLUMNS)).astype(
        {
            "class": np.int64,
            "component": np.int64,
            "harm_rate": np.float64,
            "harmful": bool,
            "class_name": str,
            "source": str,
        }
    )
    if out_harmful is not None:
        write_table(harmful, out_harmful, provenance)
    return {"images": len(table), "classes": int(table["class"].nunique()), "precision": retrieval_precision(table),
            "components": len(harmful), "harmful": int(harmful["harmful"].sum())}  # fmt: skip


def retrieval_precision(table: pd.DataFrame) -> float | None:
    """Fraction of retrieved images that show their class's planted cue and not its object."""
    ok = table["has_cue"].notna()
    if not ok.any():
        return None
    return float(((table["has_cue"][ok] == 1) & (table["object_absent"][ok] == 1)).mean())


def _write_set(path, table: pd.DataFrame, sets: dict, names: list[str], size: int) -> None:
    set_names = sorted(sets)

    def chunks():
        for s in range(0, len(table), 256):
            part = table.iloc[s : s + 256]
            images = np.empty((len(part), size, size, 3), np.uint8)
            for name in set_names:
                sel = np.flatnonzero(part["source_set"].to_numpy() == name)
                if len(sel):
                    r = part["source_row"].to_numpy()[sel]
                    order = np.argsort(r)
                    images[sel[order]] = sets[name].images(r[order])
            yield {
                "images": images,
                "labels": part["class"].to_numpy(np.int64),
                "ids": np.array([f"retrieved-{s + i:07d}".encode() for i in range(len(part))]),
                "meta": {
                    "source_set": np.array([set_names.index(n) for n in part["source_set"]], np.int16),
                    "source_row": part["source_row"].to_numpy(np.int64),
                    "component": part["component"].to_numpy(np.int64),
                    "alpha": part["alpha"].to_numpy(np.float64),
                    "has_cue": np.nan_to_num(part["has_cue"].to_numpy(float), nan=-1).astype(np.int8),
                },
                "masks": {},
            }

    attrs = {"kind": "packed", "set_name": "npca_retrieved", "class_names": names, "image_size": size,
             "source_sets": json.dumps(set_names)}  # fmt: skip
    write_imageset(path, len(table), chunks(), attrs)
