"""TCAV scores of the common-object concept for every BAM model (Yang & Kim 2019, sec. 5.1 and
app. F-G; docs/methods.md#attribution-methods, #bam-metrics).

Concept: `tcav.concept_images` training images of X_os whose object is the common object (the
paper's dog, 100 images). Random counterparts: R + 1 sets of as many training images of X_0s
(scenes without objects; the paper's negatives), drawn by a seeded generator. Inputs scored:

- f_o and f_s: the test images of X_os whose object is the common object, with each model's label
  (the object class for f_o, the scene class for f_s); MCS_TCAV = TCAV(f_o) - TCAV(f_s).
- every k-series model: the test images of the first scene class of X_os^1.0 (they carry the
  common object for every k and are identical across k), label 0; MCS_TCAV(k) = TCAV(f_k) - TCAV(f_1.0).

Layers: `tcav.layers` (module names inside the network; default the pre-pool feature map). The
paper also uses the logit layer; at the logits the directional derivative of a logit is a fixed
one-hot direction, so it is left out. captum's CAV cache lives under `cache_dir`, keyed by the
checkpoint hash, the concept images and the settings (`spurlab.attribution.tcav.cache_key`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..attribution import AttributionModel
from ..attribution.tcav import TCAVSettings, cache_key, combine_layers, tcav_scores
from ..config import bam_models
from ..data.bam import labels_for
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io import sha256_json
from ..io.tables import write_table
from ..models import load_model
from .bam_attributions import part_rng

TCAV_SETS = ("bam_os_train", "bam_0s_train", "bam_os_test", "bam_k100_test")


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def layer_names(am: AttributionModel, layers: list[str] | None) -> list[str]:
    if not layers:
        return ["feature_map"]
    names = dict(am.named_modules())
    out = []
    for layer in layers:
        full = f"clf.net.{layer}"
        if full not in names:
            raise SpurlabError(f"config key bam.benchmark.tcav.layers: '{layer}' is not a module of the network")
        out.append(full)
    return out


def run_tcav(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path, cache_dir: str | Path,
             progress: bool = True) -> pd.DataFrame:  # fmt: skip
    b = cfg["bam"]["benchmark"]
    tc = b["tcav"]
    settings = TCAVSettings(random_sets=int(tc["random_sets"]), alpha=float(tc["alpha"]), seed=int(b["seed"]))
    cf = cfg["bam"]["objects"].index(cfg["bam"]["common_object"])
    for name in TCAV_SETS:
        if name not in sets:
            raise SpurlabError(f"bam tcav: image set {name} not given (--set-names/--imagesets)")
    rng = part_rng(b["seed"], "tcav")
    n = int(tc["concept_images"])
    with open_imageset(sets["bam_os_train"]) as os_tr, open_imageset(sets["bam_0s_train"]) as zs_tr:
        pos = np.flatnonzero(os_tr.f["meta/object_label"][:] == cf)
        if len(pos) < 2:
            raise SpurlabError(f"{sets['bam_os_train']}: fewer than 2 images of the common object for its concept")
        pos = np.sort(rng.permutation(pos)[:n])
        concept = _float(os_tr.images(pos))
        rand_rows = [
            np.sort(rng.choice(len(zs_tr), size=min(n, len(zs_tr)), replace=False))
            for _ in range(settings.random_sets + 1)
        ]
        all_zs = zs_tr.images()
        randoms = [_float(all_zs[r]) for r in rand_rows]
        concept_sha = sha256_json(
            {"os": os_tr.sha256, "0s": zs_tr.sha256, "pos": pos.tolist(), "random": [r.tolist() for r in rand_rows]}
        )
    with open_imageset(sets["bam_os_test"]) as os_te, open_imageset(sets["bam_k100_test"]) as k_te:
        rows_o = np.flatnonzero(os_te.f["meta/object_label"][:] == cf)
        inputs_os = _float(os_te.images(rows_o))
        targets = {"f_o": np.full(len(rows_o), cf), "f_s": labels_for(os_te, "scene_label")[rows_o]}
        rows_k = np.flatnonzero(k_te.f["meta/scene_label"][:] == 0)
        inputs_k = _float(k_te.images(rows_k))
        test_shas = {"bam_os_test": os_te.sha256, "bam_k100_test": k_te.sha256}
    records = []
    cache_dir = Path(cache_dir)
    for name in bam_models(cfg):
        model, _ = load_model(model_dirs[name])
        am = AttributionModel(model)
        layers = layer_names(am, tc["layers"])
        sha = model_checkpoint_sha256(model_dirs[name])
        x, t = (
            (inputs_os, targets[name]) if name in ("f_o", "f_s") else (inputs_k, np.zeros(len(rows_k), dtype=np.int64))
        )
        model_id = f"{name}-{cache_key(sha, concept_sha, settings, layers)}"
        if progress:
            print(f"tcav {name}: {len(layers)} layers, {settings.random_sets} random sets", flush=True)
        rows = tcav_scores(
            am,
            layers,
            concept=concept,
            randoms=randoms,
            inputs=x,
            targets=torch.as_tensor(t),
            model_id=model_id,
            save_path=cache_dir,
            settings=settings,
        )
        comb = combine_layers(rows)
        for r in rows:
            records.append({"model": name, "layer": r["layer"], "score": r["score"], "random_score": r["random_score"],
                            "score_sd": r["score_sd"], "p_value": r["p_value"], "significant": r["significant"],
                            "concept_scores": json.dumps(r["concept_scores"]), "random_scores": json.dumps(r["random_scores"])})  # fmt: skip
        records.append({"model": name, "layer": "combined", "score": comb["score"], "random_score": comb["random_score_all_layers"],
                        "score_sd": np.nan, "p_value": np.nan, "significant": bool(comb["layers_kept"]),
                        "concept_scores": json.dumps(comb["layers_kept"]), "random_scores": "[]"})  # fmt: skip
    df = pd.DataFrame(records)
    provenance = {"models": {m: model_checkpoint_sha256(model_dirs[m]) for m in bam_models(cfg)},
                  "concepts": concept_sha, "imagesets": test_shas, "tcav": tc, "seed": b["seed"]}  # fmt: skip
    write_table(df, out, provenance)
    return df
