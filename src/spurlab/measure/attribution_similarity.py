"""Feature-attribution reliability measures of Adebayo et al. 2022 (sec. 2.1; docs/methods.md#post-hoc-explanation-measures).

With SSIM S (scikit-image `structural_similarity`, `data_range=1`) between maps normalised by
Adebayo's normaliser (|attribution| summed over channels, min-subtracted, capped at the 99th
percentile, in [0, 1]; `spurlab.attribution.normalise`):

- K-SSD  = S(E_spu(x_spu), ground truth)          known-signal detection (high is good)
- CCM    = S(E_spu(x_norm), E_norm(x_norm))       cause for concern (high: no alert without the signal)
- FAM    = S(E_norm(x_spu), E_spu(x_spu))         false alarm (high: normal model looks spurious)
- FAM-GT = S(E_norm(x_spu), ground truth)

x_norm are clean test images, x_spu the same rows with the signal (`contam_<signal>_test`), the ground
truth the signal's mask stored with the set (for blur: the background). Every map explains the
model's own predicted class. Methods (captum, docs/methods.md#attribution-methods settings): gradient, SmoothGrad, Integrated
Gradients, Guided Backprop. Rows are a seeded sample of `posthoc.n_images` test images, the same for
every signal, so signals compare on paired images.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import contamination_signals, spurious_model
from ..data.contaminate import check_twins
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.figures import save_figure
from ..io.tables import write_table

MEASURES = ("kssd", "ccm", "fam", "famgt")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W) maps in [0, 1] (Wang et al. 2004, scikit-image, data_range 1)."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), data_range=1.0)
    )


def measures(e_spu_spu: np.ndarray, e_spu_norm: np.ndarray, e_norm_norm: np.ndarray, e_norm_spu: np.ndarray,
             gt: np.ndarray) -> dict[str, float]:  # fmt: skip
    """K-SSD, CCM, FAM, FAM-GT of one image (see module docstring)."""
    return {"kssd": ssim(e_spu_spu, gt), "ccm": ssim(e_spu_norm, e_norm_norm),
            "fam": ssim(e_norm_spu, e_spu_spu), "famgt": ssim(e_norm_spu, gt)}  # fmt: skip


def sample_rows(seed: int, n_rows: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"posthoc-attributions")]))
    return np.sort(rng.permutation(n_rows)[: min(n, n_rows)])


def maps_for(
    model, images: np.ndarray, methods, settings, seed: int, progress: bool, desc: str
) -> tuple[dict, np.ndarray]:
    """({method: (N, H, W) Adebayo-normalised maps}, predictions) of `model` on its own predictions."""
    from ..attribution import AttributionModel, attribute_batched, normalise
    from ..models import predict

    pred = predict(model, images)
    am = AttributionModel(model)
    out = {m: [] for m in methods}
    for _, raw in attribute_batched(am, images, pred, methods, settings, seed=seed, progress=progress, desc=desc):
        for m, r in raw.items():
            out[m].append(normalise(r, "adebayo").numpy())
    return {m: np.concatenate(v) for m, v in out.items()}, pred


def run_signal(cfg: dict, signal: str, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path, figure: str | Path,
               threads: int = 2, progress: bool = True, svg: str | Path | None = None) -> dict:  # fmt: skip
    """Per image x method measures for one signal -> `out` (.parquet + .csv); panels -> `figure` (PNG)
    and `svg`."""
    from ..attribution import AttributionSettings
    from ..models import load_model

    if signal not in contamination_signals(cfg):
        raise SpurlabError(f"posthoc attributions: no signal '{signal}' (has: {', '.join(contamination_signals(cfg))})")
    p = cfg["posthoc"]
    torch.set_num_threads(threads)
    names = {"normal": "normal", "spurious": spurious_model(signal)}
    for m in names.values():
        if m not in model_dirs:
            raise SpurlabError(f"posthoc attributions {signal}: model {m} not given (--models/--model-dirs)")
    need = ["contam_clean_test", f"contam_{signal}_test"]
    for n in need:
        if n not in sets:
            raise SpurlabError(f"posthoc attributions {signal}: image set {n} not given (--set-names/--imagesets)")
    with open_imageset(sets[need[0]]) as clean, open_imageset(sets[need[1]]) as spu:
        check_twins(clean, spu)
        rows = sample_rows(p["seed"], len(clean), int(p["n_images"]))
        x = {"norm": clean.images(rows), "spu": spu.images(rows)}
        gt = spu.masks(signal, rows).astype(np.float64)
        labels = clean.labels[rows]
        shas = {need[0]: clean.sha256, need[1]: spu.sha256}
    settings = AttributionSettings(**p["attribution"])
    methods = list(p["methods"])
    maps, preds = {}, {}
    for role, m in names.items():
        model, _ = load_model(model_dirs[m])
        for kind in ("norm", "spu"):
            maps[role, kind], preds[role, kind] = maps_for(
                model,
                x[kind],
                methods=methods,
                settings=settings,
                seed=p["seed"],
                progress=progress,
                desc=f"{m} x_{kind}",
            )
    records = []
    for method in methods:
        for i, r in enumerate(rows):
            v = measures(maps["spurious", "spu"][method][i], maps["spurious", "norm"][method][i],
                         maps["normal", "norm"][method][i], maps["normal", "spu"][method][i], gt[i])  # fmt: skip
            records.append({"signal": signal, "method": method, "row": int(r), "label": int(labels[i]),
                            "pred_normal_norm": int(preds["normal", "norm"][i]), "pred_normal_spu": int(preds["normal", "spu"][i]),
                            "pred_spurious_norm": int(preds["spurious", "norm"][i]),
                            "pred_spurious_spu": int(preds["spurious", "spu"][i]), **v})  # fmt: skip
    df = pd.DataFrame(records)
    provenance = {"signal": signal, "models": {m: model_checkpoint_sha256(model_dirs[m]) for m in names.values()},
                  "imagesets": shas, "methods": methods, "attribution": settings.record(), "normaliser": "adebayo",
                  "seed": p["seed"], "n_images": len(rows)}  # fmt: skip
    write_table(df, out, provenance)
    panels(figure, signal, x=x, maps=maps, methods=methods, n=int(p["panel_images"]), svg=svg)
    return {"signal": signal, "rows": len(rows), **{k: round(float(df[k].mean()), 4) for k in MEASURES}}


def panels(path, signal: str, x: dict, maps: dict, methods: list[str], n: int, svg=None) -> None:
    """PNG: per image row, the clean and spurious input, then per method E_norm(x_norm),
    E_norm(x_spu), E_spu(x_norm), E_spu(x_spu)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(x["norm"]))
    combos = [("normal", "norm"), ("normal", "spu"), ("spurious", "norm"), ("spurious", "spu")]
    cols = 2 + 4 * len(methods)
    fig, axes = plt.subplots(max(n, 1), cols, figsize=(1.1 * cols, 1.2 * max(n, 1) + 0.6), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(x["norm"][i])
        axes[i, 1].imshow(x["spu"][i])
        for k, method in enumerate(methods):
            for c, (role, kind) in enumerate(combos):
                axes[i, 2 + 4 * k + c].imshow(maps[role, kind][method][i], cmap="gray", vmin=0, vmax=1)
    titles = ["x_norm", f"x_spu ({signal})"] + [f"{m}\n{r[:4]}(x_{k})" for m in methods for r, k in combos]
    for j, t in enumerate(titles):
        axes[0, j].set_title(t, fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(
        f"Adebayo et al. 2022: attributions, signal '{signal}' (normal / spurious model x normal / spurious input)",
        fontsize=8,
    )
    fig.tight_layout()
    save_figure(fig, path, svg)
