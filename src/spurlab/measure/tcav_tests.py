"""Concept-activation tests of Adebayo et al. 2022 (sec. 4, Table 2; docs/methods.md#attribution-methods,
#post-hoc-explanation-measures): TCAV scores
(Kim et al. 2018, captum, `spurlab.attribution.tcav`) of the planted signals and of core concepts
the generator renders, compared by two-sample KS tests at `posthoc.ks_alpha` (0.05).

Concepts (each `tcav.concept_images` images, seeded): ``signal:<s>``, test images of the
non-aligned classes carrying signal s (so they are not the scored inputs); ``shape:<class>``,
``scene:<scene>`` and ``colour:<index>``, clean training images of that class / background /
object colour. Random counterparts: R + 1 sets of clean training images. Scored inputs: the test
images of the aligned class without the signal (x_norm, every concept) and with signal s (x_spu,
the concept signal:s), target the aligned class; the layer is the pre-pool feature map unless
`tcav.layers` names others. One row per model, concept, inputs, layer and random run.

The paper names the tests K-SSD, CCM and FAM without spelling out the distributions; ours, with the
"no reliance" reference of TCAV being its random-concept CAVs:

- K-SSD(s): spurious_s's signal:s scores on x_spu vs its random-CAV scores (reject: the known
  signal is detected);
- CCM(s): spurious_s's core-concept scores on x_norm vs the normal model's (reject: the concepts a
  practitioner would test raise concern without the signal);
- FAM(s): the normal model's signal:s scores on x_spu vs its random-CAV scores (reject: false alarm).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import contamination_signals, posthoc_models
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io import sha256_json
from ..io.tables import write_table

CORE_KINDS = ("shape", "scene", "colour")


def ks_test(a, b, alpha: float = 0.05) -> dict:
    """Two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp, two-sided): reject iff p < alpha."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return {"statistic": float("nan"), "p_value": float("nan"), "reject": False, "n": [len(a), len(b)]}
    r = stats.ks_2samp(a, b)
    return {
        "statistic": float(r.statistic),
        "p_value": float(r.pvalue),
        "reject": bool(r.pvalue < alpha),
        "n": [len(a), len(b)],
    }


def ks_tables(df: pd.DataFrame, signals: list[str], alpha: float) -> dict:
    """{signal: {kssd|ccm|fam: ks_test}} from the TCAV table (see module docstring)."""
    out = {}
    for s in signals:
        spu, sig = f"spurious_{s}", f"signal:{s}"
        own = df[(df.model == spu) & (df.concept == sig) & (df.inputs == "spu")]
        nor = df[(df.model == "normal") & (df.concept == sig) & (df.inputs == "spu")]
        core = df[df.kind.isin(CORE_KINDS) & (df.inputs == "norm")]
        out[s] = {
            "kssd": ks_test(own.score, own.random_score, alpha),
            "ccm": ks_test(core[core.model == spu].score, core[core.model == "normal"].score, alpha),
            "fam": ks_test(nor.score, nor.random_score, alpha),
        }
    return out


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def _gather_concepts(cfg: dict, sets: dict[str, str], random_sets: int) -> dict:
    """The concepts' images (shapes, scenes, colours from the clean train set; signals from the
    contaminated test sets, on images of other classes), the random sets, the inputs (the aligned
    class's clean and contaminated test images) and the sets' hashes, drawn in one seeded order."""
    p = cfg["posthoc"]
    tc = p["tcav"]
    rng = np.random.default_rng(np.random.SeedSequence([int(p["seed"]), zlib.crc32(b"posthoc-tcav")]))
    n = int(tc["concept_images"])
    concepts: dict[str, tuple[str, torch.Tensor, list]] = {}

    def pick(rows: np.ndarray, what: str) -> np.ndarray:
        if len(rows) < 2:
            raise SpurlabError(f"posthoc.tcav: fewer than 2 images for concept {what}")
        return np.sort(rng.permutation(rows)[:n])

    with open_imageset(sets["contam_clean_train"]) as tr:
        names, scenes = tr.class_names, list(tr.attrs["scene_names"])
        aligned = names.index(cfg["contamination"]["aligned_class"])
        labels, meta = tr.labels, tr.meta(["scene", "colour"])
        for shape in tc["shapes"]:
            r = pick(np.flatnonzero(labels == names.index(shape)), f"shape:{shape}")
            concepts[f"shape:{shape}"] = ("shape", _float(tr.images(r)), r.tolist())
        for scene in tc["scenes"]:
            r = pick(np.flatnonzero(meta.scene.to_numpy() == scenes.index(scene)), f"scene:{scene}")
            concepts[f"scene:{scene}"] = ("scene", _float(tr.images(r)), r.tolist())
        for colour in tc["colours"]:
            r = pick(np.flatnonzero(meta.colour.to_numpy() == int(colour)), f"colour:{colour}")
            concepts[f"colour:{colour}"] = ("colour", _float(tr.images(r)), r.tolist())
        rand_rows = [np.sort(rng.choice(len(tr), size=min(n, len(tr)), replace=False)) for _ in range(random_sets + 1)]
        randoms = [_float(tr.images(r)) for r in rand_rows]
        shas = {"contam_clean_train": tr.sha256}
    inputs = {}
    with open_imageset(sets["contam_clean_test"]) as te:
        rows_a = np.flatnonzero(te.labels == aligned)
        rows_o = np.flatnonzero(te.labels != aligned)
        inputs["norm"] = _float(te.images(rows_a))
        shas["contam_clean_test"] = te.sha256
    for s in contamination_signals(cfg):
        with open_imageset(sets[f"contam_{s}_test"]) as st:
            r = pick(rows_o, f"signal:{s}")
            concepts[f"signal:{s}"] = ("signal", _float(st.images(r)), r.tolist())
            inputs[f"spu_{s}"] = _float(st.images(rows_a))
            shas[f"contam_{s}_test"] = st.sha256
    return {"concepts": concepts, "randoms": randoms, "rand_rows": rand_rows, "inputs": inputs, "shas": shas,
            "names": names, "aligned": aligned, "n_inputs": len(rows_a)}  # fmt: skip


def run_tcav(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path, cache_dir: str | Path,
             threads: int = 2, progress: bool = True) -> pd.DataFrame:  # fmt: skip
    from ..attribution import AttributionModel
    from ..attribution.tcav import TCAVSettings, cache_key, tcav_scores
    from ..models import load_model
    from .bam_tcav import layer_names

    p = cfg["posthoc"]
    tc = p["tcav"]
    torch.set_num_threads(threads)
    settings = TCAVSettings(random_sets=int(tc["random_sets"]), alpha=float(p["ks_alpha"]), seed=int(p["seed"]))
    need = ["contam_clean_train", "contam_clean_test"] + [f"contam_{s}_test" for s in contamination_signals(cfg)]
    for n in need:
        if n not in sets:
            raise SpurlabError(f"posthoc tcav: image set {n} not given (--set-names/--imagesets)")
    models = posthoc_models(cfg)
    for m in models:
        if m not in model_dirs:
            raise SpurlabError(f"posthoc tcav: model {m} not given (--models/--model-dirs)")
    g = _gather_concepts(cfg, sets, settings.random_sets)
    concepts, randoms, inputs, shas = g["concepts"], g["randoms"], g["inputs"], g["shas"]
    base_sha = sha256_json({"sets": shas, "random": [r.tolist() for r in g["rand_rows"]]})
    target = torch.full((g["n_inputs"],), g["aligned"], dtype=torch.long)
    records = []
    for m in models:
        model, _ = load_model(model_dirs[m])
        am = AttributionModel(model)
        layers = layer_names(am, tc["layers"])
        sha = model_checkpoint_sha256(model_dirs[m])
        for cname, (kind, imgs, crow) in concepts.items():
            model_id = f"{m}-{cache_key(sha, sha256_json({'base': base_sha, 'concept': cname, 'rows': crow}), settings, layers)}"
            kinds = ["norm"] + ([f"spu_{cname.split(':', 1)[1]}"] if kind == "signal" else [])
            for k in kinds:
                if progress:
                    print(f"tcav {m} {cname} x_{k}", flush=True)
                for row in tcav_scores(
                    am,
                    layers,
                    concept=imgs,
                    randoms=randoms,
                    inputs=inputs[k],
                    targets=target,
                    model_id=model_id,
                    save_path=cache_dir,
                    settings=settings,
                ):
                    for run, (cs, rs) in enumerate(zip(row["concept_scores"], row["random_scores"])):
                        records.append({"model": m, "concept": cname, "kind": kind, "inputs": "spu" if k != "norm" else "norm",
                                        "layer": row["layer"], "run": run, "score": cs, "random_score": rs,
                                        "t_test_p": row["p_value"]})  # fmt: skip
    df = pd.DataFrame(records)
    provenance = {"models": {m: model_checkpoint_sha256(model_dirs[m]) for m in models}, "imagesets": shas,
                  "tcav": tc, "seed": p["seed"], "aligned_class": g["names"][g["aligned"]]}  # fmt: skip
    write_table(df, out, provenance)
    return df
