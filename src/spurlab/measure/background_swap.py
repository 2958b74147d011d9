"""Background swap (Xiao et al. 2021, ImageNet-9's mixed-rand; docs/methods.md#interventional-checks-of-explanations):
every model of the suite on test images re-rendered on another scene, the object, its pose and the
non-background cues kept (`spurlab.data.interventions.background_swap`). One row per model and
image: the prediction before and after, whether it flipped, and whether the image showed its own
class's background cue (the images a background-reliant model should lose).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..data.interventions import background_swap, check_same
from ..errors import SpurlabError
from ..io.tables import write_table
from ..stats import mean_ci
from .interventions import probabilities, sample_rows


def swap_rows(model, tw: dict) -> pd.DataFrame:
    """One model's predictions on the originals and the swapped images of `tw`."""
    p0, p1 = probabilities(model, tw["original"]), probabilities(model, tw["swapped"])
    pred, pred_s = p0.argmax(1), p1.argmax(1)
    idx = np.arange(len(pred))
    labels = np.asarray(tw["labels"], dtype=np.int64)
    return pd.DataFrame({"label": labels, "scene": tw["scene"].astype(str), "swapped_scene": tw["swapped_scene"].astype(str),
                         "own_background_cue": tw["own_background_cue"].astype(bool), "pred": pred.astype(np.int64),
                         "pred_swapped": pred_s.astype(np.int64), "p": p0[idx, pred], "p_swapped": p1[idx, pred],
                         "correct": pred == labels, "correct_swapped": pred_s == labels, "flip": pred != pred_s})  # fmt: skip


def run_background_swap(
    cfg: dict, model_dirs: dict[str, str], imageset: str | Path, out: str | Path, threads: int = 2
) -> dict:
    """The background-swap table of every model in `model_dirs` on the `test` set -> `out`."""
    import torch

    from ..models import load_model

    iv = cfg["interventions"]
    torch.set_num_threads(int(threads))
    with open_imageset(imageset) as s:
        if s.attrs.get("set_name") != "test":
            raise SpurlabError(f"{imageset}: set '{s.attrs.get('set_name')}', expected the planted-cue test set")
        rows = sample_rows(iv["seed"], len(s), iv["n_images"]["background"], "background")
        tw = background_swap(cfg["datasets"], cfg["seed"], iv["seed"], rows)
        check_same(tw["original"], s.images(rows), str(imageset))
        sha = s.sha256
    frames = []
    for name, directory in model_dirs.items():
        model, _ = load_model(directory)
        t = swap_rows(model, tw)
        t.insert(0, "model", name)
        t.insert(1, "row", rows)
        frames.append(t)
    df = pd.concat(frames, ignore_index=True)
    provenance = {"models": {m: model_checkpoint_sha256(d) for m, d in model_dirs.items()}, "imagesets": {"test": sha},
                  "seed": iv["seed"], "n_images": len(rows), "swap": "mixed_rand"}  # fmt: skip
    write_table(df, out, provenance)
    return {
        "rows": len(rows),
        "flip_rate": {m: round(float(g["flip"].mean()), 4) for m, g in df.groupby("model", sort=False)},
    }


def summarize_background(df: pd.DataFrame, seed: int = 0) -> dict:
    """Per model: flip rate, accuracy before and after (and their gap, ImageNet-9's BG-gap read
    as original - mixed-rand), and the flip rates of images with and without their own class's
    background cue; each with its bootstrap interval over images (`<name>_ci`, `spurlab.stats`)."""
    out = {}
    for model, g in df.groupby("model", sort=False):
        own = g["own_background_cue"].to_numpy(bool)
        rec = {"flip_rate": round(float(g["flip"].mean()), 4), "n": int(len(g)),
               "accuracy_original": round(float(g["correct"].mean()), 4),
               "accuracy_swapped": round(float(g["correct_swapped"].mean()), 4)}  # fmt: skip
        rec["accuracy_drop"] = round(rec["accuracy_original"] - rec["accuracy_swapped"], 4)
        flip = g["flip"].to_numpy(float)
        rec["flip_rate_ci"] = mean_ci(flip, seed, f"flip-{model}")
        rec["accuracy_drop_ci"] = mean_ci(g["correct"].to_numpy(float) - g["correct_swapped"].to_numpy(float), seed,
                                          f"drop-{model}")  # fmt: skip
        for key, sel in (("own_background_cue", own), ("other", ~own)):
            rec[f"flip_rate_{key}"] = round(float(g["flip"].to_numpy()[sel].mean()), 4) if sel.any() else None
            rec[f"flip_rate_{key}_n"] = int(sel.sum())
            rec[f"flip_rate_{key}_ci"] = mean_ci(flip[sel], seed, f"flip-{model}-{key}")
        a, b = rec["flip_rate_own_background_cue"], rec["flip_rate_other"]
        rec["own_cue_flips_more"] = None if a is None or b is None else bool(a > b)
        out[str(model)] = rec
    return out
