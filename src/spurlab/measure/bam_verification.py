"""The verification table of the BAM models (Yang & Kim 2019, sec. 3.2-3.3 and Fig. 2).

- f_o and f_s on X_os, X_0s (objects removed) and X_og (scenes replaced by gray), each scored
  against its own labels: expected f_o ~ chance on X_0s and intact on X_og, f_s the opposite.
- Each k-series scene classifier f_k on the images of the first scene class (the paper's "bamboo
  forest", which carries the common object for every k), with the common object and with it
  removed (the same rows of X_0s: all variants share latents): the accuracy drop is expected to
  fall as k grows. The drop over all scene classes that carry the object is reported too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import kseries_codes
from ..data.bam import cf_scene_count, labels_for
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.tables import write_table
from ..models import load_model, predict


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return float((pred == y).mean()) if len(y) else float("nan")


def cf_scene_rows(imageset, code: str, n_scenes: int, first_only: bool) -> np.ndarray:
    """Rows of a k-series set whose scene class carries the common object (or scene 0 only)."""
    scene = imageset.f["meta/scene_label"][:]
    limit = 1 if first_only else cf_scene_count(int(code[1:]) / 100, n_scenes)
    return np.flatnonzero(scene < limit)


def run_verification(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path) -> pd.DataFrame:
    """`model_dirs`: BAM model name -> directory; `sets`: set name -> path (os/0s/og test, kNNN test)."""
    rows = []
    n_scenes = len(cfg["bam"]["scenes"])
    opened = {name: open_imageset(path) for name, path in sets.items()}
    try:
        images = {name: s.images() for name, s in opened.items()}
        for model_name in ("f_o", "f_s"):
            model, meta = load_model(model_dirs[model_name])
            col = meta.get("label_column")
            for variant in ("os", "0s", "og"):
                s = opened[f"bam_{variant}_test"]
                y = labels_for(s, col or "object_label")
                rows.append({"model": model_name, "set": f"bam_{variant}_test", "rows": "all", "k": np.nan,
                             "accuracy": _acc(predict(model, images[s.attrs["set_name"]]), y), "n": len(y)})  # fmt: skip
        for code in kseries_codes(cfg):
            model, _ = load_model(model_dirs[f"f_{code}"])
            s, empty = opened[f"bam_{code}_test"], opened["bam_0s_test"]
            for first_only, which in ((True, "first_scene"), (False, "cf_scenes")):
                idx = cf_scene_rows(s, code, n_scenes, first_only)
                y = s.f["meta/scene_label"][:][idx]
                with_cf = _acc(predict(model, images[f"bam_{code}_test"][idx]), y)
                without = _acc(predict(model, images["bam_0s_test"][idx]), empty.f["meta/scene_label"][:][idx])
                for variant, acc in (("with_cf", with_cf), ("without_cf", without)):
                    rows.append({"model": f"f_{code}", "set": f"bam_{code}_test" if variant == "with_cf" else "bam_0s_test",
                                 "rows": f"{which}:{variant}", "k": int(code[1:]) / 100, "accuracy": acc, "n": len(idx)})  # fmt: skip
    finally:
        for s in opened.values():
            s.close()
    df = pd.DataFrame(rows)
    provenance = {"models": {m: model_checkpoint_sha256(d) for m, d in sorted(model_dirs.items())},
                  "imagesets": {n: opened[n].sha256 for n in sorted(opened)}}  # fmt: skip
    write_table(df, out, provenance)
    return df


def accuracy_drops(df: pd.DataFrame, which: str = "first_scene") -> dict[float, float]:
    """k -> accuracy with the common object minus without it, from the verification table."""
    out = {}
    for k, g in df[df["k"].notna()].groupby("k"):
        acc = dict(zip(g["rows"], g["accuracy"]))
        out[float(k)] = acc[f"{which}:with_cf"] - acc[f"{which}:without_cf"]
    if not out:
        raise SpurlabError("verification table: no k-series rows")
    return out


def verification_record(df: pd.DataFrame) -> dict:
    """{'f_o': {'os': acc, '0s': acc, 'og': acc}, 'f_s': {...}} for the summary."""
    rec: dict = {}
    for _, r in df[df["rows"] == "all"].iterrows():
        rec.setdefault(r["model"], {})[r["set"].split("_")[1]] = round(float(r["accuracy"]), 4)
    return rec


__all__ = ["run_verification", "accuracy_drops", "verification_record", "cf_scene_rows"]
