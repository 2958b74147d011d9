"""The `datasets` stage's headline numbers: per set size, hash and observed cue rates per class,
plus the generator's measured throughput."""

from __future__ import annotations

import time

import numpy as np

from ..config import benchmark_on
from ..errors import SpurlabError
from .imagesets import ImageSet
from .sets import build_plan
from .synth import World


def cue_rates(s: ImageSet) -> dict[str, dict[str, float]]:
    """Observed fraction of each class's images that show each cue ({class: {cue: rate}}).
    Images without a class object (cue_only) are grouped under '(no object)'."""
    cues = [c for c in s.meta_columns if c.startswith("cue_") and c not in ("cue_on",)]
    if not cues:
        return {}
    meta = s.meta(cues)
    labels = s.labels
    names = s.class_names
    out = {}
    for c in np.unique(labels):
        rows = labels == c
        key = names[c] if c >= 0 else "(no object)"
        out[key] = {col[4:]: round(float(meta[col].to_numpy()[rows].mean()), 6) for col in cues}
    return out


def measure_throughput(cfg: dict, n: int = 2048, threads: int = 1) -> float:
    """Images per second of rendering the train split in memory (no file I/O)."""
    plan, _ = build_plan(cfg, "train")
    k = max(1, min(plan.n_chunks, (n + 255) // 256))
    t = time.perf_counter()
    m = 0
    for k_i, rec in enumerate(plan.chunks(threads)):
        m += len(rec["labels"])
        if k_i + 1 >= k:
            break
    return m / (time.perf_counter() - t)


def datasets_summary(cfg: dict, paths: list, threads: int = 1) -> dict:
    sets = {}
    for p in paths:
        with ImageSet(p) as s:
            s.verify()
            name = s.attrs["set_name"]
            if name in sets:
                raise SpurlabError(f"{p}: set '{name}' given twice")
            sets[name] = {
                "file": str(p),
                "n_images": len(s),
                "image_size": s.image_size,
                "sha256": s.sha256,
                "config_sha256": s.attrs["config_sha256"],
                "class_counts": {
                    (s.class_names[c] if c >= 0 else "(no object)"): int(k)
                    for c, k in zip(*np.unique(s.labels, return_counts=True))
                },
                "cue_rates": cue_rates(s),
            }
    if not benchmark_on(cfg):  # real-data folders only: no generator to describe or time
        return {
            "sets": sets,
            "planted_cue_rates": None,
            "not_computed": {"planted_cue_rates": "no planted-cue benchmark in this config (real data)"},
        }
    world = World.from_config(cfg["datasets"])
    planted = {
        c: {q: float(world.prob[i, j]) for j, q in enumerate(world.cue_names)} for i, c in enumerate(world.classes)
    }
    return {
        "sets": sets,
        "planted_cue_rates": planted,
        "images_per_second": round(measure_throughput(cfg, threads=1), 1),
        "images_per_second_threads": {"threads": threads, "value": round(measure_throughput(cfg, threads=threads), 1)},
    }
