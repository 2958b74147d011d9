"""How the `features` rule should use two cores: one 2-thread job at a time, or two 1-thread jobs.

The suite's caching is many short jobs (every model x set: 4 x 5 plus the lightweight sets), each a
fresh `spurlab features` process that pays Python, torch and timm imports before it forwards a
few thousand 64-px images. One run prints, for the same jobs on generated image sets:
- the wall time of running them one after another at --threads 2 (what Snakemake does when the
  rule asks for 2 threads on `--cores 2`) and two at a time at --threads 1 (rule asks for 1);
- their ratio (> 1: the 1-thread rule finishes the caching sooner);
- whether the caches are byte-identical either way (CPU inference does not depend on the thread
  count, so the choice is free of numerical consequences).

    .venv/bin/python bench/caching_jobs.py [--rows 4000 1000 1000 500] [--models 2]
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feature_cache import ARCH, ARGS, make_set  # noqa: E402


def job(model_dir: Path, imageset: Path, out: Path, threads: int) -> None:
    cmd = [sys.executable, "-m", "spurlab.cli", "features", "--model-dir", str(model_dir), "--imageset", str(imageset),
           "--out", str(out), "--batch-size", "256", "--device", "cpu", "--threads", str(threads), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)


def timed(jobs: list[tuple[Path, Path]], out: Path, threads: int, parallel: int) -> float:
    out.mkdir()
    t = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda mj: job(mj[0], mj[1], out / f"{mj[0].name}.{mj[1].name}", threads), jobs))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[4000, 1000, 1000, 500],
                    help="one image set per value (default: train/val/test/cue_only-like sizes)")  # fmt: skip
    ap.add_argument("--models", type=int, default=2, help="models, each cached on every set")
    args = ap.parse_args()

    from spurlab.models import build_classifier
    from spurlab.models.factory import save_model

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sets = []
        for i, n in enumerate(args.rows):
            sets.append(d / f"set{i}.h5")
            make_set(sets[-1], n)
        models = []
        for m in range(args.models):
            torch.manual_seed(m)
            models.append(d / f"model{m}")
            save_model(build_classifier(ARCH, 10, 64, ARGS).eval(), models[-1], {"name": models[-1].name})
        jobs = [(m, s) for m in models for s in sets]
        serial = timed(jobs, d / "t2", threads=2, parallel=1)
        paired = timed(jobs, d / "t1", threads=1, parallel=2)
        same = all(filecmp.cmp(p, d / "t1" / p.name, shallow=False) for p in (d / "t2").iterdir())
        print(f"caching jobs: {len(jobs)} ({args.models} x {ARCH} {ARGS}; sets of {args.rows} rows), 2 cores")
        print(f"  one at a time, --threads 2: {serial:6.1f} s")
        print(f"  two at a time, --threads 1: {paired:6.1f} s")
        print(f"  ratio (2-thread serial / 1-thread pairs): {serial / paired:.2f}   caches byte-identical: {same}")


if __name__ == "__main__":
    main()
