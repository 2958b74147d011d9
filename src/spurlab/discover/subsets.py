"""D(i, j): per class-feature image subsets with soft masks (Singla & Feizi 2022, sec. 4; docs/methods.md#class-feature-subsets).

For class i and each of its top features j (by importance, docs/methods.md#neural-feature-importance): the images labelled i with
the highest phi_j, each with its neural activation map (NAM) as a soft mask. The paper keeps 65
of ~1300 images per class (5%); Spuriosity Rankings keeps the top 20th percentile. Here the size
is `fraction` of the class's images, capped at `max_images` (at least `min_images`).

Alongside the subsets, each pair gets what annotation needs: its top images' feature attacks
(docs/methods.md#feature-attack) and, where the image set has ground-truth masks (the planted-cue benchmark), where its
NAM mass lies: on the object, on the class's planted cue, elsewhere.

File layout (one HDF5, written class by class, then renamed)::

    pairs/class, pairs/feature, pairs/rank   int64 (P,)   class i, feature j, rank of j in class i
                                                          (1 = most important, as in the published CSV)
    pairs/importance                         float64 (P,) IV[i, j]
    pairs/start, pairs/count                 int64 (P,)   the pair's slice of members/*
    pairs/<statistic>                        float64 (P,) STAT_COLUMNS (`pair_region_stats`): where
                                                          the members' NAMs lie, on the object (all
                                                          members; also grown by object_margin_px,
                                                          `hot_object_near`) and on the class's planted
                                                          cue and the rest (members showing the cue);
                                                          NaN without masks
    members/row                              int64 (M,)   image-set row, by decreasing phi_j
    members/activation                       float32 (M,) phi_j(x)
    members/nam                              uint8 (M, H, W) NAM * 255, rounded
    top/attack                               uint8 (P, T, H, W, 3) feature attacks of the first T members
    attrs  format, model, checkpoint_sha256, imageset, imageset_sha256, importance_sha256,
           class_names (JSON), planted_cues (JSON {class: [mask, ...]}), fraction, min_images,
           max_images, top_images, attack (JSON), object_margin_px (salient.annotation.auto_object_margin
           feature-map cells, in pixels), spurlab_version, code_sha256 (spurlab.io.create_h5)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet, planted_cue_masks
from ..errors import SpurlabError
from ..io import atomic_path, create_h5, sha256_file
from ..shards import Shard, shard_attrs
from .attack import AttackSettings, feature_attack
from .importance import read_importance
from .nam import feature_map_size, neural_activation_maps
from .subsets_file import FORMAT, STAT_COLUMNS, imageset_region_masks, object_margin_px, pair_region_stats, subset_size


@dataclass
class SubsetSettings(Settings):
    """Stage `salient_subsets` (config `salient.subset`, and `salient.attack`); the batch size is
    the command line's."""

    SECTION = "salient.subset"
    KEYS = {"attack": "salient.attack", "object_margin": "salient.annotation.auto_object_margin", "batch_size": None}
    fraction: float = 0.05  # paper: 65 of ~1300 per class
    min_images: int = 1
    max_images: int = 65  # paper
    top_images: int = 5  # paper: top-5 images per pair are shown to annotators
    attack: str = "paper"  # or "code" (docs/methods.md#feature-attack)
    # the object region the annotator reads, grown by this many feature-map cells (ours; 0: the mask)
    object_margin: float = 0.0
    batch_size: int = 64


def _ensure(f: h5py.File, name: str, shape, dtype, chunks=None, compression=None):
    if not shape[0]:  # no rows (a shard whose classes have no top features): h5py refuses chunks here
        chunks = compression = None
    return f.create_dataset(name, shape, dtype=dtype, chunks=chunks, compression=compression, track_times=False)


class _SubsetsWriter:
    """The datasets of a subsets file being written: members/* and top/attack as they come, the
    pairs/* columns held and written at the end (`finish`)."""

    def __init__(self, f: h5py.File, n_pairs: int, n_members: int, size: int, top_images: int):
        t = top_images
        self.f, self.pos = f, 0
        self.cols = {c: np.zeros(n_pairs, dtype=np.int64) for c in ("class", "feature", "rank", "start", "count")}
        self.imp = np.zeros(n_pairs)
        self.loc = {c: np.full(n_pairs, np.nan) for c in STAT_COLUMNS}
        self.m_row = _ensure(f, "members/row", (n_members,), "int64")
        self.m_act = _ensure(f, "members/activation", (n_members,), "float32")
        self.m_nam = _ensure(f, "members/nam", shape=(n_members, size, size), dtype="uint8", chunks=(1, size, size),
                             compression="gzip")  # fmt: skip
        self.tops = _ensure(f, "top/attack", shape=(n_pairs, t, size, size, 3), dtype="uint8",
                            chunks=(1, t, size, size, 3), compression="gzip")  # fmt: skip

    def add_pair(self, p: int, pair: tuple[int, int, int], rows: np.ndarray, activations: np.ndarray, nams: np.ndarray,
                 importance: float) -> None:  # fmt: skip
        """Pair p = (class, feature, rank): its members' rows, activations and NAMs."""
        pos, n = self.pos, len(rows)
        self.cols["class"][p], self.cols["feature"][p], self.cols["rank"][p] = pair
        self.cols["start"][p], self.cols["count"][p] = pos, n
        self.imp[p] = importance
        self.m_row[pos : pos + n] = rows
        self.m_act[pos : pos + n] = activations
        self.m_nam[pos : pos + n] = np.round(nams * 255).astype(np.uint8)
        self.pos += n

    def finish(self) -> None:
        for c, v in self.cols.items():
            self.f.create_dataset(f"pairs/{c}", data=v, track_times=False)
        self.f.create_dataset("pairs/importance", data=self.imp, track_times=False)
        for c, v in self.loc.items():
            self.f.create_dataset(f"pairs/{c}", data=v, track_times=False)


def _class_sizes(imageset: ImageSet, labels: np.ndarray, top: np.ndarray, settings: SubsetSettings):
    """Per class: its rows, its subset size; and the classes without top features (row of -1)."""
    num_classes, k = top.shape
    names = imageset.class_names
    class_rows = [np.flatnonzero(labels == i) for i in range(num_classes)]
    featured = np.asarray(top).min(axis=1) >= 0 if k else np.ones(num_classes, bool)
    without = [i for i in range(num_classes) if not featured[i]]
    short = [i for i, r in enumerate(class_rows) if featured[i] and len(r) < settings.min_images]
    if short:  # D(i, j) would silently shrink below the configured k
        i = short[0]
        raise SpurlabError(f"{imageset.path}: class '{names[i]}' has {len(class_rows[i])} images, fewer than "
                           f"salient.subset.min_images = {settings.min_images}")  # fmt: skip
    sizes = [subset_size(len(r), settings.fraction, settings.min_images, settings.max_images) for r in class_rows]
    return class_rows, sizes, featured, without


def _class_images(imageset: ImageSet, union: np.ndarray, n: int, cue_names: list[str] | None, margin_px: int = 0):
    """The class's member images (float, (m, 3, H, W); None when n is 0) and, with `cue_names`
    (the set has masks), their `region_masks` ({} without)."""
    images = torch.from_numpy(imageset.images(union)).permute(0, 3, 1, 2).float().div_(255.0) if n else None
    masks = {}
    if cue_names is not None and n:
        masks = imageset_region_masks(imageset, union, cue_names, margin_px)
    return images, masks


def _pair_nams(model, images: torch.Tensor, sel: list[int], j: int, batch_size: int, device) -> list[np.ndarray]:
    """NAMs of feature j on images[sel], in batches."""
    nams = []
    for s in range(0, len(sel), batch_size):
        b = images[sel[s : s + batch_size]].to(device)
        nams.append(neural_activation_maps(model, b, [int(j)] * len(b)).cpu().numpy())
    return nams


def _attack_block(model, first: torch.Tensor, j: int, attack: AttackSettings, t: int) -> np.ndarray:
    """Feature attacks on feature j of the first members, uint8 (t, H, W, 3), zero-padded."""
    attacked = feature_attack(model, first, [int(j)] * len(first), attack)
    arr = np.round(attacked.permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)
    size = first.shape[-1]
    block = np.zeros((t, size, size, 3), np.uint8)
    block[: len(arr)] = arr
    return block


def build_salient_subsets(
    model,
    model_sha256: str,
    imageset: ImageSet,
    activations: np.ndarray,
    labels: np.ndarray,
    top: np.ndarray,
    importance: np.ndarray,
    importance_sha256: str,
    out: str | os.PathLike,
    settings: SubsetSettings,
    device: torch.device,
    progress: bool = True,
    shard: Shard = Shard(),
) -> dict:
    """Write D(i, j) for every class i of `shard` and each of its top features j (rows of `top`).

    `activations` (N, D) are the model's cached phi on `imageset` (row order = the set's order),
    `labels` (N,) its labels, `top` (C, k) the selected features, `importance` (C, D) the IV table.
    A class whose row of `top` is -1 has no top features (`importance.empty_classes`): it gets no
    pair and is listed in the attr `classes_without_features`. Returns counts for logging.
    """
    from tqdm import tqdm

    num_classes, k = top.shape
    size, names, t = imageset.image_size, imageset.class_names, settings.top_images
    has_masks = "object" in imageset.mask_names
    cues = planted_cue_masks(imageset)
    attack = AttackSettings.for_image_size(settings.attack, size, size)
    class_rows, sizes, featured, without = _class_sizes(imageset, labels, top, settings)
    classes = [i for i in shard.classes(num_classes) if featured[i]]
    n_pairs, n_members = len(classes) * k, sum(sizes[i] for i in classes) * k
    model.eval()
    margin_px = object_margin_px(size, feature_map_size(model, size, device), settings.object_margin)
    with atomic_path(out) as tmp, create_h5(tmp) as f:
        w = _SubsetsWriter(f, n_pairs, n_members, size=size, top_images=t)
        for done, i in enumerate(tqdm(classes, desc="salient subsets", unit="class", disable=not progress)):
            rows, n = class_rows[i], sizes[i]
            # per rank: rows by decreasing phi_j
            members = [rows[np.argsort(-activations[rows, j], kind="stable")[:n]] for j in top[i]]
            union = np.unique(np.concatenate(members)) if n else np.zeros(0, dtype=np.int64)
            where = {row: u for u, row in enumerate(union)}
            images, masks = _class_images(imageset, union, n, cues.get(names[i], []) if has_masks else None, margin_px)
            for r, j in enumerate(top[i]):
                p = done * k + r  # the kept classes before i, k pairs each
                sel = [where[row] for row in members[r]]
                nams = _pair_nams(model, images, sel, j, batch_size=settings.batch_size, device=device)
                nams = np.concatenate(nams) if nams else np.zeros((0, size, size), np.float32)
                w.add_pair(p, (i, j, r + 1), members[r], activations[members[r], j], nams, importance=importance[i, j])
                if masks:
                    for c, v in pair_region_stats(nams, {q: m[sel] for q, m in masks.items()}).items():
                        w.loc[c][p] = v
                if len(sel):
                    w.tops[p] = _attack_block(model, images[sel[:t]].to(device), j, attack, t)
        w.finish()
        f.attrs.update(
            format=FORMAT,
            model=getattr(model, "arch", ""),
            checkpoint_sha256=model_sha256,
            imageset=imageset.attrs.get("set_name", imageset.path.stem),
            imageset_sha256=imageset.sha256,
            importance_sha256=importance_sha256,
            class_names=json.dumps(names),
            planted_cues=json.dumps(cues, sort_keys=True),
            fraction=settings.fraction,
            min_images=settings.min_images,
            max_images=settings.max_images,
            top_images=t,
            attack=json.dumps({"preset": settings.attack, **attack.as_dict()}),
            has_masks=has_masks,
            object_margin_px=margin_px,
            classes_without_features=json.dumps(without),
            **shard_attrs(shard),
        )
    return {
        "pairs": n_pairs,
        "members": n_members,
        "has_masks": has_masks,
        "classes_without_features": [names[i] for i in without],
    }


class _FeatureColumns:
    """phi restricted to some rows and the selected features, indexed as the full (N, D) array
    would be (rows outside `row_ids` are never asked for: they belong to another shard's classes)."""

    def __init__(self, values: np.ndarray, columns: np.ndarray, row_ids: np.ndarray, n_rows: int):
        self.values, self.pos = values, {int(c): i for i, c in enumerate(columns)}
        self.row_pos = np.full(n_rows, -1, dtype=np.int64)
        self.row_pos[row_ids] = np.arange(len(row_ids))

    def __getitem__(self, key):
        rows, j = key
        return self.values[self.row_pos[rows], self.pos[int(j)]]


def run_subsets(model_dir, imageset_path, features_path, importance_path, out, settings: SubsetSettings,
                device: str = "auto", progress: bool = True, shard: Shard = Shard()) -> dict:  # fmt: skip
    """Stage `salient_subsets`: D(i, j) on `imageset_path` for the importance file's top features
    (only `shard`'s classes, merged by `spurlab.shards`)."""
    from ..device import pick_device
    from ..models.factory import load_model

    dev = pick_device(device)
    model, _ = load_model(model_dir, dev)
    sha = model_checkpoint_sha256(model_dir)
    imp = read_importance(importance_path, sha)
    imageset = ImageSet(imageset_path)
    # only the shard's rows and top features are held: at ImageNet scale all rows x all selected
    # features would not fit
    classes = shard.classes(len(imp["top"]))
    cols = np.unique(imp["top"][classes.start : classes.stop])
    cols = cols[cols >= 0]  # -1: a class without top features (importance.empty_classes)
    with open_features(features_path, model_dir=model_dir, imageset=imageset) as fc:
        labels = fc["labels"]
        mine = (labels >= classes.start) & (labels < classes.stop)
        values = np.concatenate([block[mine[s : s + len(block)]][:, cols] for s, block in fc.blocks("features")])
    phi = _FeatureColumns(values, cols, np.flatnonzero(mine), len(labels))
    return build_salient_subsets(
        model, sha, imageset=imageset, activations=phi, labels=labels, top=imp["top"], importance=imp["iv"],
        importance_sha256=sha256_file(importance_path), out=out, settings=settings, device=dev, progress=progress,
        shard=shard,
    )  # fmt: skip
