"""Generator throughput (issue #2 goal: >= 2000 images/s at 64x64 on a 2-core CPU).

Prints, from one run: images/s of rendering alone (1 and 2 threads), images/s including the
gzip'd HDF5 write, and the ratio write-inclusive / render-only.

    .venv/bin/python bench/synth.py [--config config/config.yaml] [--n 8192]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spurlab.config import load_config
from spurlab.data.imagesets import write_imageset
from spurlab.data.sets import build_plan

ROOT = Path(__file__).resolve().parents[1]


def render_only(plan, threads: int) -> float:
    t = time.perf_counter()
    n = sum(len(r["labels"]) for r in plan.chunks(threads))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--n", type=int, default=8192, help="images per measurement")
    args = ap.parse_args()
    cfg = load_config(args.config)
    cfg["datasets"]["n_images"]["train"] = args.n
    plan, attrs = build_plan(cfg, "train")
    render_only(build_plan(cfg, "val")[0], 1)  # warm caches and imports
    size = cfg["datasets"]["image_size"]
    r1 = render_only(plan, 1)
    r2 = render_only(plan, 2)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write_imageset(Path(d) / "train.h5", plan.n, plan.chunks(2), attrs)
        w2 = plan.n / (time.perf_counter() - t)
        mb = (Path(d) / "train.h5").stat().st_size / 2**20 if (Path(d) / "train.h5").exists() else float("nan")
    print(f"planted-cue generator, {args.n} images at {size}x{size}")
    print(f"  render only, 1 thread : {r1:8.0f} images/s")
    print(f"  render only, 2 threads: {r2:8.0f} images/s   (x{r2 / r1:.2f} over 1 thread)")
    print(f"  render + HDF5 write, 2 threads: {w2:8.0f} images/s   (ratio to render only: {w2 / r2:.2f})")
    print(f"  file size: {mb:.1f} MiB ({mb * 2**20 / args.n / 1024:.1f} KiB per image incl. masks)")


if __name__ == "__main__":
    main()
