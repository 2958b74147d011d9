"""Per-image, per-method region means g_c of the BAM models (Yang & Kim 2019, sec. 4; docs/methods.md#bam-metrics).

One job ("part") per model contrast, so the work spreads over Snakemake jobs:

- ``contrast``: f_o and f_s on X_os, and f_s on the same scenes without objects (X_0s, for IDR),
  on rows all three classify correctly (X_corr of MCS and of IDR: the two metrics share rows, and
  IDR gets full trials); regions: the object's mask, a random mask (another image's object region)
  and that random mask outside this image's object (the IDR baseline, `regions.outside`).
- ``kNNN``: the k-series model f_kNNN on the images of the first scene class of X_os^k (the paper's
  "bamboo forest", which carries the common object for every k, so the images are identical across
  k and the MCS against k = 1.0 pairs rows one to one); regions: the common object and random.
- ``iir``: f_s on scenes x of X_0s and on x + delta, delta optimised from the pasted object's pixels
  (`spurlab.measure.iir_delta`); region: the patch (the object's mask). The paper's f is trained on X_0s
  "but it can be any model": f_s is used. Every object class serves as the patch, not only the
  common one (the paper: a dog).

Maps are normalised by both named normalisers (`spurlab.attribution.normalise`); only their
region means are stored (a table, one row per image, method, normaliser and region), never the
maps. Rows are chosen by a seeded permutation and capped at `bam.benchmark.max_images`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..attribution import AttributionModel, AttributionSettings, attribute_batched, normalise, region_means
from ..attribution.normalise import NORMALISERS
from ..attribution.regions import outside, random_masks
from ..config import bam_part_inputs, kseries_codes
from ..data.bam import labels_for
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.tables import write_table
from ..models import load_model, predict
from .iir_delta import DeltaSettings, optimise_delta


def part_rng(seed: int, part: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(part.encode())]))


def region_table(model, images, targets, regions: dict[str, np.ndarray], methods, settings: AttributionSettings,
                 seed: int = 0, progress: bool = False, desc: str = "") -> pd.DataFrame:  # fmt: skip
    """g_c for every image x method x normaliser x region: columns pos (index into `images`),
    method, normaliser, region, g."""
    am = AttributionModel(model)
    parts = []
    for start, maps in attribute_batched(
        am, images, targets, methods, settings, seed=seed, progress=progress, desc=desc
    ):
        for method, raw in maps.items():
            n = len(raw)
            for norm in NORMALISERS:
                e = normalise(raw, norm)
                for region, masks in regions.items():
                    g = region_means(e, masks[start : start + n])
                    parts.append(pd.DataFrame({"pos": np.arange(start, start + n), "method": method,
                                               "normaliser": norm, "region": region, "g": g}))  # fmt: skip
    if not parts:
        return pd.DataFrame({"pos": pd.Series(dtype=np.int64), "method": pd.Series(dtype=str),
                             "normaliser": pd.Series(dtype=str), "region": pd.Series(dtype=str),
                             "g": pd.Series(dtype=np.float64)})  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _pick(candidates: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(candidates)[:limit])


def run_part(cfg: dict, part: str, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path,
             progress: bool = True) -> dict:  # fmt: skip
    """Compute one part's table (see module docstring) and write it to `out` (.parquet + .csv)."""
    b = cfg["bam"]["benchmark"]
    need = bam_part_inputs(cfg, part)
    for m in need["models"]:
        if m not in model_dirs:
            raise SpurlabError(f"bam attributions {part}: model {m} not given (--models/--model-dirs)")
    for s in need["sets"]:
        if s not in sets:
            raise SpurlabError(f"bam attributions {part}: image set {s} not given (--set-names/--imagesets)")
    settings = AttributionSettings(**b["attribution"])
    methods = list(b["methods"])
    rng = part_rng(b["seed"], part)
    limit = int(b["max_images"])
    models = {m: load_model(model_dirs[m])[0] for m in need["models"]}
    opened = {n: open_imageset(sets[n]) for n in need["sets"]}
    frames, info = [], {"part": part}
    try:
        if part == "contrast":
            os_, zs = opened["bam_os_test"], opened["bam_0s_test"]
            x_os, x_0s = os_.images(), zs.images()
            y_o, y_s = labels_for(os_, "object_label"), labels_for(os_, "scene_label")
            ok_o = predict(models["f_o"], x_os) == y_o
            ok_s = predict(models["f_s"], x_os) == y_s
            ok_s0 = predict(models["f_s"], x_0s) == labels_for(zs, "scene_label")
            rows = _pick(np.flatnonzero(ok_o & ok_s & ok_s0), limit, rng)
            obj = os_.masks("object", rows) if len(rows) else np.zeros((0,) + x_os.shape[1:3], np.uint8)
            rand = random_masks(obj, rng)
            regions = {"object": obj, "random": rand, "random_outside": outside(rand, obj)}
            for model, set_name, x, y, ok in (("f_o", "bam_os_test", x_os, y_o, ok_o), ("f_s", "bam_os_test", x_os, y_s, ok_s),
                                              ("f_s", "bam_0s_test", x_0s, y_s, ok_s0)):  # fmt: skip
                t = region_table(models[model], x[rows], targets=y[rows], regions=regions, methods=methods,
                                 settings=settings, seed=b["seed"], progress=progress,
                                 desc=f"{model} {set_name}")  # fmt: skip
                frames.append(_finish(t, model, set_name, rows, ok[rows]))
            info.update(candidates=int((ok_o & ok_s & ok_s0).sum()), rows=len(rows))
        elif part in kseries_codes(cfg):
            name, set_name = f"f_{part}", f"bam_{part}_test"
            s = opened[set_name]
            x, y = s.images(), labels_for(s, "scene_label")
            ok = predict(models[name], x) == y
            rows = _pick(np.flatnonzero(y == 0), limit, part_rng(b["seed"], "kseries"))  # same rows for every k
            obj = s.masks("object", rows) if len(rows) else np.zeros((0,) + x.shape[1:3], np.uint8)
            regions = {"object": obj, "random": random_masks(obj, part_rng(b["seed"], "kseries-random"))}
            t = region_table(models[name], x[rows], targets=y[rows], regions=regions, methods=methods,
                             settings=settings, seed=b["seed"], progress=progress, desc=name)  # fmt: skip
            frames.append(_finish(t, name, set_name, rows, ok[rows]))
            info.update(rows=len(rows), accuracy=float(ok[rows].mean()) if len(rows) else None)
        elif part == "iir":
            frames, extra = _iir(cfg, models["f_s"], os_=opened["bam_os_test"], zs=opened["bam_0s_test"], methods=methods,
                                 settings=settings,
                                 rng=rng, limit=limit, progress=progress)  # fmt: skip
            info.update(extra)
        else:
            raise SpurlabError(f"BAM attribution part '{part}': unknown")
    finally:
        for s in opened.values():
            s.close()
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.insert(0, "part", part)
    provenance = {
        "part": part,
        "models": {m: model_checkpoint_sha256(model_dirs[m]) for m in need["models"]},
        "imagesets": {n: opened[n].sha256 for n in need["sets"]},
        "methods": methods,
        "attribution": settings.record(),
        "seed": b["seed"],
        "max_images": limit,
    }
    if part == "iir":
        provenance["iir"] = b["iir"]
    write_table(df, out, provenance)
    return info


def _finish(t: pd.DataFrame, model: str, set_name: str, rows: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    t.insert(0, "model", model)
    t.insert(1, "set", set_name)
    t.insert(2, "row", rows[t["pos"].to_numpy()].astype(np.int64))
    t.insert(3, "correct", correct[t["pos"].to_numpy()].astype(bool))
    return t.drop(columns="pos")


def _iir(cfg, model, os_, zs, methods, settings, rng, limit, progress):
    from tqdm import tqdm

    b = cfg["bam"]["benchmark"]
    ds = DeltaSettings(**{k: v for k, v in b["iir"].items() if k != "threshold"})
    x_os, x_0s = os_.images(), zs.images()
    y = labels_for(zs, "scene_label")
    ok = predict(model, x_0s) == y
    rows = _pick(np.flatnonzero(ok), limit, rng)
    mask = os_.masks("object", rows).astype(np.float32) if len(rows) else np.zeros((0,) + x_0s.shape[1:3], np.float32)
    to_f = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    x = to_f(x_0s[rows])
    delta0 = to_f(x_os[rows]) - x
    deltas, diags = [], []
    bs = int(settings.batch_size)
    for s in tqdm(range(0, len(rows), bs), desc="iir delta", disable=not progress, mininterval=5.0):
        d, diag = optimise_delta(model, x[s : s + bs], delta0[s : s + bs], torch.from_numpy(mask[s : s + bs]), ds)
        deltas.append(d)
        diags.append(pd.DataFrame(diag))
    xd = (x + torch.cat(deltas)) if deltas else x
    diag = pd.concat(diags, ignore_index=True) if diags else pd.DataFrame()
    regions = {"object": mask}
    frames = []
    for set_name, imgs in (("bam_0s_test", x), ("bam_0s_test+delta", xd)):
        t = region_table(
            model,
            imgs,
            targets=y[rows],
            regions=regions,
            methods=methods,
            settings=settings,
            seed=b["seed"],
            progress=progress,
            desc=f"f_s {set_name}",
        )
        for col in diag.columns:
            t[col] = diag[col].to_numpy()[t["pos"].to_numpy()]
        frames.append(_finish(t, "f_s", set_name, rows, ok[rows]))
    extra = {"rows": len(rows)}
    if len(diag):
        extra.update(output_change_median=float(diag["output_change"].median()),
                     output_change_start_median=float(diag["output_change_start"].median()),
                     outside_mask_max=float(diag["outside_mask_max"].max()))  # fmt: skip
    return frames, extra
