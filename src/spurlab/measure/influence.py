"""Training-point ranking of Adebayo et al. 2022 (sec. 5, Table 3; docs/methods.md#post-hoc-explanation-measures): TracIn (Pruthi et
al. 2020) through captum's `TracInCPFast`, which sums, over the per-epoch checkpoints that
`spurlab.train.fit` keeps, eta_i * <grad_W loss(z), grad_W loss(z')> for the final linear layer W
(its gradient factorises into features x output error, so no per-example backward pass is needed).
TracInCP sums over checkpoints taken at an interval (`influence.checkpoint_every` epochs, the last
epoch always included); eta_i is the summed mean learning rate of the epochs checkpoint i stands
for (the schedule of the model's training settings), so with an interval of 1 it is epoch i's.

For each model and test image we keep the `influence.top_k` proponents in the model's training set,
explaining the model's predicted class, and ICM (Hanawa et al. 2021) = the fraction of them whose
class is the test image's true class; also the fraction in the aligned class (for a spurious model
these are exactly the training images carrying the signal). Test images: a seeded sample of
`influence.test_images` clean test images of the non-aligned classes (x_norm) and the same rows with
each signal (x_spu).

KS tests (Table 3; ours, the paper does not spell the distributions out; the "no reliance"
reference of a ranking is the same model's ranking without the signal):

- K-SSD(s): ICM of spurious_s on x_spu vs on x_norm (reject: the known signal shows in the rankings);
- CCM(s): ICM of spurious_s on x_norm vs the normal model's (reject: concern without the signal);
- FAM(s): ICM of the normal model on x_spu vs on x_norm (reject: false alarm).
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import NORMAL_MODEL, contamination_signals, posthoc_model_section, posthoc_model_sets, posthoc_models
from ..data.contaminate import check_twins
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.tables import write_table


def icm(top_labels: np.ndarray, label: int) -> float:
    """Identical class metric: fraction of the top-ranked training points of class `label`."""
    top_labels = np.asarray(top_labels)
    return float((top_labels == label).mean()) if top_labels.size else float("nan")


def epoch_learning_rates(train_section: dict, n_train: int, epochs: int) -> list[float]:
    """Mean learning rate of each epoch under the model's schedule (TracIn's eta per checkpoint)."""
    from ..train import TrainSettings, lr_at

    s = TrainSettings.from_config(train_section, None)
    spe = math.ceil(n_train / s.batch_size)
    total = spe * s.epochs
    return [
        float(np.mean([lr_at(st, total, s, spe) for st in range((e - 1) * spe, e * spe)])) for e in range(1, epochs + 1)
    ]


def checkpoint_paths(model_dir: str | Path) -> list[Path]:
    paths = sorted((Path(model_dir) / "checkpoints").glob("epoch_*.pt"))
    if not paths:
        raise SpurlabError(f"{model_dir}/checkpoints: no per-epoch checkpoints (TracIn needs them; retrain the model)")
    return paths


def checkpoint_weights(epoch_rates: list[float], every: int) -> dict[int, float]:
    """{checkpoint index (0-based epoch): eta}: every `every`-th epoch and the last, each weighted by
    the summed rates of the epochs since the previous kept checkpoint (TracInCP's interval)."""
    if every < 1:
        raise SpurlabError(f"posthoc.influence.checkpoint_every must be >= 1, got {every}")
    n = len(epoch_rates)
    kept = sorted({e for e in range(every - 1, n, every)} | {n - 1})
    starts = [0] + [e + 1 for e in kept[:-1]]
    return {e: float(sum(epoch_rates[a : e + 1])) for a, e in zip(starts, kept)}


def tracin_top(model, train_x: torch.Tensor, train_y: torch.Tensor, ckpts: list[Path], lrs: dict[str, float],
               test_x: torch.Tensor, test_y: torch.Tensor, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(indices (N, k), scores (N, k)) of the top-k proponents of each test example (captum TracInCPFast)."""
    from captum.influence import TracInCPFast

    def load(m, path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        m.load_state_dict(state["model"])
        return lrs[str(path)]

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=False
    )
    model.eval()
    tracin = TracInCPFast(model, model.net.get_classifier(), loader, [str(p) for p in ckpts], checkpoints_load_func=load,
                          loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=batch_size)  # fmt: skip
    # all test images at once: captum reads the whole training set per call and checkpoint
    res = tracin.influence((test_x, test_y), k=min(k, len(train_x)), proponents=True)
    return res.indices.numpy(), res.influence_scores.numpy()


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def run_influence(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path, threads: int = 2,
                  progress: bool = True) -> pd.DataFrame:  # fmt: skip
    from ..models import load_model, predict

    p = cfg["posthoc"]
    inf = p["influence"]
    torch.set_num_threads(threads)
    models = posthoc_models(cfg)
    need = (
        sorted({posthoc_model_sets(cfg, m)[0] for m in models})
        + ["contam_clean_test"]
        + [f"contam_{s}_test" for s in contamination_signals(cfg)]
    )
    for n in need:
        if n not in sets:
            raise SpurlabError(f"posthoc influence: image set {n} not given (--set-names/--imagesets)")
    for m in models:
        if m not in model_dirs:
            raise SpurlabError(f"posthoc influence: model {m} not given (--models/--model-dirs)")
    shas = {}
    with open_imageset(sets["contam_clean_test"]) as te:
        names = te.class_names
        aligned = names.index(cfg["contamination"]["aligned_class"])
        rng = np.random.default_rng(np.random.SeedSequence([int(p["seed"]), zlib.crc32(b"posthoc-influence")]))
        rows = np.sort(rng.permutation(np.flatnonzero(te.labels != aligned))[: int(inf["test_images"])])
        labels = te.labels[rows].astype(np.int64)
        x = {"norm": te.images(rows)}
        shas["contam_clean_test"] = te.sha256
        for s in contamination_signals(cfg):
            with open_imageset(sets[f"contam_{s}_test"]) as st:
                check_twins(te, st)
                x[s] = st.images(rows)
                shas[f"contam_{s}_test"] = st.sha256
    records = []
    for m in models:
        model, meta = load_model(model_dirs[m])
        train_name = posthoc_model_sets(cfg, m)[0]
        with open_imageset(sets[train_name]) as tr:
            train_x, train_y = _float(tr.images()), torch.from_numpy(tr.labels.astype(np.int64))
            shas[train_name] = tr.sha256
        every_ckpt = checkpoint_paths(model_dirs[m])
        rates = epoch_learning_rates(posthoc_model_section(cfg, m)["train"], len(train_y), len(every_ckpt))
        weights = checkpoint_weights(rates, int(inf.get("checkpoint_every", 1)))
        ckpts = [every_ckpt[e] for e in weights]
        lrs = {str(every_ckpt[e]): w for e, w in weights.items()}
        kinds = ["norm"] + (contamination_signals(cfg) if m == NORMAL_MODEL else [m.split("_", 1)[1]])
        xs = np.concatenate([x[k] for k in kinds])
        preds = predict(model, xs)
        if progress:
            print(
                f"tracin {m}: {len(xs)} test images, {len(ckpts)} checkpoints, {len(train_y)} training images",
                flush=True,
            )
        top, scores = tracin_top(model, train_x, train_y=train_y, ckpts=ckpts, lrs=lrs, test_x=_float(xs),
                                 test_y=torch.from_numpy(preds),
                                 k=int(inf["top_k"]), batch_size=int(inf["batch_size"]))  # fmt: skip
        top_labels = train_y.numpy()[top]
        for j, kind in enumerate(kinds):
            for i, r in enumerate(rows):
                q = j * len(rows) + i
                records.append({"model": m, "signal": "-" if kind == "norm" else kind, "inputs": "norm" if kind == "norm" else "spu",
                                "row": int(r), "label": int(labels[i]), "pred": int(preds[q]),
                                "icm": icm(top_labels[q], labels[i]), "aligned_fraction": icm(top_labels[q], aligned),
                                "top_rows": json.dumps(top[q].tolist()), "top_score": float(scores[q, 0])})  # fmt: skip
    df = pd.DataFrame(records)
    provenance = {"models": {m: model_checkpoint_sha256(model_dirs[m]) for m in models}, "imagesets": shas,
                  "influence": inf, "seed": p["seed"], "method": "captum TracInCPFast, final layer, epoch checkpoints"}  # fmt: skip
    write_table(df, out, provenance)
    return df


def ks_tables(df: pd.DataFrame, signals: list[str], alpha: float) -> dict:
    """{signal: {kssd|ccm|fam: ks_test}} from the influence table (see module docstring)."""
    from .tcav_tests import ks_test

    out = {}
    for s in signals:
        spu = df[df.model == f"spurious_{s}"]
        nor = df[df.model == "normal"]
        out[s] = {
            "kssd": ks_test(spu[spu.inputs == "spu"].icm, spu[spu.inputs == "norm"].icm, alpha),
            "ccm": ks_test(spu[spu.inputs == "norm"].icm, nor[nor.inputs == "norm"].icm, alpha),
            "fam": ks_test(nor[(nor.inputs == "spu") & (nor.signal == s)].icm, nor[nor.inputs == "norm"].icm, alpha),
        }
    return out
