"""BAM's family of the interventional checks (docs/methods.md#interventional-checks-of-explanations):
f_o and f_s on X_os, the object removed and the scene removed by BAM's own row-aligned re-renders.

The three test variants are drawn from one set of latents per split (`spurlab.data.bam`), so row i
of X_0s is row i of X_os without its object and row i of X_og the same object on uniform gray:
the `no_object` and `no_cue` twins, the cue being the scene (the whole background). f_o was trained
on object labels (planted part: the object), f_s on scene labels (planted part: the scene).
Attributions are the BAM stage's methods and settings with its normaliser, explaining each
model's own prediction; the rows are a seeded sample of `interventions.n_images.bam` test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.tables import write_table
from .interventions import checked_methods, label_rows, measure_model, sample_rows

SETS = {"original": "bam_os_test", "no_object": "bam_0s_test", "no_cue": "bam_og_test"}
PLANTED = {"f_o": "object", "f_s": "cue"}
LABEL_COLUMNS = {"f_o": "object_label", "f_s": "scene_label"}
# meta columns that are the latents (or the grid) a row was rendered from: equal across the variants
_SHARED_META = ("object_label", "scene_label", "cx", "cy", "scale", "angle", "colour")


def check_variant_twins(opened: dict) -> None:
    """X_0s and X_og must be X_os row for row: same length, grid and latents, and X_og's object
    mask is X_os's."""
    os_ = opened[SETS["original"]]
    for name in (SETS["no_object"], SETS["no_cue"]):
        other = opened[name]
        cols = [c for c in _SHARED_META if c in os_.meta_columns and c in other.meta_columns]
        same = len(other) == len(os_) and all(
            np.array_equal(os_.f[f"meta/{c}"][:], other.f[f"meta/{c}"][:]) for c in cols
        )
        if not same:
            raise SpurlabError(f"{other.path}: rows are not the twins of {os_.path} (grid or latents differ)")
    if not np.array_equal(opened[SETS["no_cue"]].masks("object"), os_.masks("object")):
        raise SpurlabError(f"{opened[SETS['no_cue']].path}: object masks differ from {os_.path}'s")


def run_bam_interventions(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path,
                          threads: int = 2) -> dict:  # fmt: skip
    """The BAM family table (one row per model, image and method) -> `out` (.parquet + .csv)."""
    import torch

    from ..attribution import AttributionSettings
    from ..models import load_model

    iv, b = cfg["interventions"], cfg["bam"]["benchmark"]
    for m in PLANTED:
        if m not in model_dirs:
            raise SpurlabError(f"interventions bam: model {m} not given (--models/--model-dirs)")
    for n in SETS.values():
        if n not in sets:
            raise SpurlabError(f"interventions bam: image set {n} not given (--set-names/--imagesets)")
    torch.set_num_threads(int(threads))
    opened = {n: open_imageset(sets[n]) for n in SETS.values()}
    try:
        check_variant_twins(opened)
        os_ = opened[SETS["original"]]
        rows = sample_rows(iv["seed"], len(os_), iv["n_images"]["bam"], "bam")
        twins = {k: opened[n].images(rows) for k, n in SETS.items()}
        twins["object"] = os_.masks("object", rows).astype(bool)
        twins["cue"] = ~twins["object"]
        labels = {m: os_.f[f"meta/{c}"][:][rows] for m, c in LABEL_COLUMNS.items()}
        shas = {n: s.sha256 for n, s in opened.items()}
    finally:
        for s in opened.values():
            s.close()
    settings = AttributionSettings(**b["attribution"])
    methods = checked_methods(cfg, "bam")
    frames = []
    for m, planted in PLANTED.items():
        model, _ = load_model(model_dirs[m])
        t, _ = measure_model(model, twins, methods, settings, b["normaliser"], seed=iv["seed"])
        frames.append(label_rows(t, rows, labels[m], family="bam", setting="", model=m, planted=planted))
    df = pd.concat(frames, ignore_index=True)
    provenance = {"family": "bam", "models": {m: model_checkpoint_sha256(model_dirs[m]) for m in PLANTED},
                  "imagesets": shas, "methods": methods, "attribution": settings.record(), "normaliser": b["normaliser"],
                  "seed": iv["seed"], "n_images": len(rows)}  # fmt: skip
    write_table(df, out, provenance)
    return {
        "rows": len(rows),
        "deletion": {m: round(float(g["deletion"].mean()), 3) for m, g in df.groupby("method", sort=False)},
    }
