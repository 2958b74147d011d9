"""The post hoc family of the interventional checks (docs/methods.md#interventional-checks-of-explanations):
the normal and spurious models of Adebayo et al.'s stage on contaminated test images, with the
signal removed (the clean twin, ``contam_clean_test``) and with the object removed (the same
latents re-rendered with `object_present` False, `spurlab.data.interventions.contamination_twins`).

The cue is the contamination signal; the normal model was trained without it (planted part: the
object), ``spurious_<signal>`` with it on every aligned-class image (planted part: the signal).
Attributions are the post hoc stage's methods and settings with Adebayo's normaliser (the maps
K-SSD scores), explaining each model's own prediction; the rows are a seeded sample of
`interventions.n_images.posthoc` test images, the same for every signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import NORMAL_MODEL, contamination_signals, spurious_model
from ..data.contaminate import check_twins
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..data.interventions import check_same, contamination_twins
from ..errors import SpurlabError
from ..io.tables import write_table
from .interventions import checked_methods, label_rows, measure_model, sample_rows
from .interventions_figures import examples_figure


def signal_twins(cfg: dict, signal: str, sets: dict[str, str], rows: np.ndarray) -> tuple[dict, str]:
    """The re-rendered twins of `rows` for one signal, checked byte for byte against the stored
    ``contam_<signal>_test`` and ``contam_clean_test`` rows; and the signal set's sha256."""
    clean_name, spu_name = "contam_clean_test", f"contam_{signal}_test"
    for n in (clean_name, spu_name):
        if n not in sets:
            raise SpurlabError(f"interventions posthoc: image set {n} not given (--set-names/--imagesets)")
    tw = contamination_twins(cfg["datasets"], cfg["contamination"], cfg["seed"], signal, rows)
    with open_imageset(sets[clean_name]) as clean, open_imageset(sets[spu_name]) as spu:
        check_twins(clean, spu)
        check_same(tw["original"], spu.images(rows), str(sets[spu_name]))
        check_same(tw["no_cue"], clean.images(rows), str(sets[clean_name]))
        return tw, spu.sha256


def _panel(signal: str, model: str, tw: dict, t: pd.DataFrame, maps: dict, classes: list[str]) -> dict:
    """The first image of one (signal, model): its twins with the model's predictions, and each
    method's map with its top part."""
    first = t[t["pos"] == 0]
    r = first.iloc[0]
    images = [(tw["original"][0], f"original: {classes[r['pred']]}"), (tw["no_cue"][0], f"no {signal}: {classes[r['pred_no_cue']]}"),
              (tw["no_object"][0], f"no object: {classes[r['pred_no_object']]}")]  # fmt: skip
    tops = dict(zip(first["method"], first["top_part"]))
    return {
        "title": f"{model} ({signal})",
        "images": images,
        "maps": [(maps[m][0], f"{m}\ntop: {tops[m]}") for m in maps],
    }


def run_posthoc_interventions(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path,
                              figure: str | Path, svg: str | Path | None = None, threads: int = 2) -> dict:  # fmt: skip
    """The post hoc family table (one row per signal, model, image and method) -> `out`; the
    first image of every (signal, model) with its twins and maps -> `figure` (PNG) and `svg`."""
    import torch

    from ..attribution import AttributionSettings
    from ..models import load_model

    iv, p = cfg["interventions"], cfg["posthoc"]
    names = [NORMAL_MODEL] + [spurious_model(s) for s in contamination_signals(cfg)]
    for m in names:
        if m not in model_dirs:
            raise SpurlabError(f"interventions posthoc: model {m} not given (--models/--model-dirs)")
    torch.set_num_threads(int(threads))
    rows = sample_rows(iv["seed"], int(cfg["contamination"]["n_images"]["test"]), iv["n_images"]["posthoc"], "posthoc")
    settings, methods = AttributionSettings(**p["attribution"]), checked_methods(cfg, "posthoc")
    models = {m: load_model(model_dirs[m])[0] for m in names}
    frames, panels, shas = [], [], {}
    for s in contamination_signals(cfg):
        tw, shas[f"contam_{s}_test"] = signal_twins(cfg, s, sets, rows)
        for m, planted in ((NORMAL_MODEL, "object"), (spurious_model(s), "cue")):
            t, maps = measure_model(models[m], tw, methods, settings, "adebayo", seed=iv["seed"])
            if len(rows):
                panels.append(_panel(s, m, tw, t, maps, classes=list(cfg["datasets"]["classes"])))
            frames.append(label_rows(t, rows, tw["labels"], family="posthoc", setting=s, model=m, planted=planted))
    with open_imageset(sets["contam_clean_test"]) as clean:
        shas["contam_clean_test"] = clean.sha256
    df = pd.concat(frames, ignore_index=True)
    provenance = {"family": "posthoc", "models": {m: model_checkpoint_sha256(model_dirs[m]) for m in names},
                  "imagesets": shas, "methods": methods, "attribution": settings.record(), "normaliser": "adebayo",
                  "seed": iv["seed"], "n_images": len(rows)}  # fmt: skip
    write_table(df, out, provenance)
    examples_figure(
        figure, panels, title="Interventions on contaminated images: twins (predicted class) and maps", svg=svg
    )
    return {
        "rows": len(rows),
        "deletion": {m: round(float(g["deletion"].mean()), 3) for m, g in df.groupby("method", sort=False)},
    }
