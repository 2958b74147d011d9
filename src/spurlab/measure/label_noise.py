"""Label-noise candidates and their core crops (Moayeri et al. 2023, sec. 4.4 and appendix H).

A class whose spurious gap is negative (models do *worse* when its spurious cue is strong) suffers
spurious feature collision: its cue is more typical of another class. Its highest-spuriosity
training images are the paper's label-noise candidates (often several objects, or another class's
object); cropping each to the region its core features activate (`core_crop`, docs/methods.md#core-cropping) isolates
the labelled object. Negative-gap classes are those whose gap, averaged over the model suite, is
below 0.

On the planted-cue benchmark both steps are checked against ground truth: whether a candidate
shows the class's planted cue, how much of the cue mask the crop removes, and every model's
accuracy on the candidates before and after cropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import ImageSet, planted_cue_masks
from ..io import sha256_file
from ..io.tables import read_table, write_table
from .figures import crop_sheet
from .spuriosity import check_set_ids, read_rankings


def negative_gap_classes(gaps: pd.DataFrame) -> list[int]:
    """Classes whose gap, averaged over the models of the gaps table, is below 0."""
    mean = gaps.groupby("class_index")["gap"].mean()
    return sorted(int(c) for c in mean[mean < 0].index)


def candidates(rankings: pd.DataFrame, set_name: str, classes: list[int], n: int) -> pd.DataFrame:
    """The n highest-spuriosity images of each class in `classes` within `set_name`."""
    r = rankings[(rankings["set"] == set_name) & rankings["class_index"].isin(classes) & (rankings["rank"] >= 0)]
    return r[r["rank"] < n].sort_values(["class_index", "rank"]).reset_index(drop=True)


def cue_removed(cue_masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per image: the fraction of its cue mask's pixels outside the crop box (NaN: no cue pixels)."""
    out = np.full(len(boxes), np.nan)
    for i, (m, (y0, x0, y1, x1)) in enumerate(zip(cue_masks, boxes)):
        total = float(m.sum())
        if total > 0:
            out[i] = 1 - float(m[y0:y1, x0:x1].sum()) / total
    return out


def _in_order(read, rows: np.ndarray) -> np.ndarray:
    """read(sorted rows) reordered to `rows` (HDF5 reads want increasing indices)."""
    order = np.sort(rows)
    return read(order)[np.searchsorted(order, rows)]


@dataclass(frozen=True)
class LabelNoiseSettings(Settings):
    """Stage `label_noise` (config `spuriosity.crop`): the `candidates` highest-spuriosity images of
    each negative-gap class in the ranked set `set_name` (spuriosity.stats_set), cropped to their
    core NAMs' region above `threshold`, widened by `expand`."""

    SECTION = "spuriosity.crop"
    KEYS = {"set_name": "spuriosity.stats_set"}
    set_name: str = "train"
    candidates: int = 8
    threshold: float = 0.9
    expand: float = 0.2


def run_label_noise(rankings_path, gaps_path, annotations_path, imageset_path, discovery_dir, models: dict[str, str],
                    out, figure, settings: LabelNoiseSettings = LabelNoiseSettings(), device: str = "auto") -> dict:  # fmt: skip
    """Stage `label_noise`: candidates of the negative-gap classes, their core crops, and every
    model's predictions on both (`out` table, `figure` PNG)."""
    set_name, n, threshold, expand = settings.set_name, settings.candidates, settings.threshold, settings.expand
    import torch

    from ..device import pick_device
    from ..models.factory import load_model
    from .core_crop import core_crops

    dev = pick_device(device)
    rankings = read_rankings(rankings_path, annotations_path)
    gaps = read_table(gaps_path, expect={"rankings_sha256": sha256_file(rankings_path)})
    annotations = read_table(annotations_path)
    imageset = ImageSet(imageset_path)
    check_set_ids(rankings, set_name, imageset.ids, imageset_path)
    negative = negative_gap_classes(gaps)
    table = candidates(rankings, set_name, negative, n)
    planted = planted_cue_masks(imageset)
    discovery, _ = load_model(discovery_dir, dev)
    loaded = {name: load_model(d, dev)[0] for name, d in models.items()}
    frames, panels = [], []
    for c, g in table.groupby("class_index", sort=True):
        rows = g["row"].to_numpy()
        images = _in_order(imageset.images, rows)
        core = annotations[(annotations["class_index"] == c) & (annotations["label"] == "core")]["feature_index"]
        g = g.copy()
        if len(core):
            boxes, crops, _, relative = core_crops(discovery, images, core.astype(int).tolist(), dev,
                                                   threshold=threshold, expand=expand)  # fmt: skip
        else:  # no core feature to crop with: the image stays whole
            size = imageset.image_size
            boxes, crops, relative = np.tile([0, 0, size, size], (len(rows), 1)), images, np.zeros(len(rows), bool)
        g[["y0", "x0", "y1", "x1"]] = boxes
        g["relative_threshold"], g["n_core_features"] = relative, len(core)
        cue = planted.get(g["class_name"].iloc[0])
        if cue:
            masks = _in_order(lambda r, cue=cue: imageset.masks(cue[0], r), rows)
            g["cue_removed"] = cue_removed(masks.astype(bool), boxes)
        else:
            g["cue_removed"] = np.nan
        for name, model in loaded.items():
            with torch.no_grad():
                for which, x in (("original", images), ("crop", crops)):
                    t = torch.from_numpy(x).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
                    g[f"pred_{which}_{name}"] = model.logits(t).argmax(1).cpu().numpy()
        frames.append(g)
        panels.append((g["class_name"].iloc[0], images, crops, boxes))
    cols = list(table.columns) + ["y0", "x0", "y1", "x1", "relative_threshold", "n_core_features", "cue_removed"]
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    provenance = {
        "rankings_sha256": sha256_file(rankings_path), "gaps_sha256": sha256_file(gaps_path),
        "annotations_sha256": sha256_file(annotations_path), "imageset_sha256": imageset.sha256,
        "discovery_sha256": model_checkpoint_sha256(discovery_dir),
        "checkpoint_sha256": {name: model_checkpoint_sha256(d) for name, d in models.items()},
        "negative_gap_classes": negative, "n": n, "threshold": threshold, "expand": expand,
    }  # fmt: skip
    write_table(result, out, provenance)
    crop_sheet(panels, figure)
    return {"classes": [imageset.class_names[c] for c in negative], "candidates": len(result)}


def label_noise_summary(table: pd.DataFrame, models: list[str], class_names: list[str]) -> dict:
    """Per negative-gap class: how many candidates show the planted cue, how much of it the crop
    removes, and each model's accuracy on the candidates before and after cropping."""
    out = {}
    for c, g in table.groupby("class_index"):
        entry = {
            "candidates": len(g),
            "cue_present": None if g["cue_present"].isna().all() else float(g["cue_present"].mean()),
            "cue_removed_by_crop": None if g["cue_removed"].isna().all() else float(g["cue_removed"].mean()),
        }
        for m in models:
            if f"pred_original_{m}" in g:
                entry[f"acc_original/{m}"] = float((g[f"pred_original_{m}"] == c).mean())
                entry[f"acc_crop/{m}"] = float((g[f"pred_crop_{m}"] == c).mean())
        out[class_names[int(c)]] = entry
    return out
