"""Feature-cache throughput and memory (issue #3, point 6).

One run prints:
- bare forward throughput (preloaded float tensors, no I/O) and full caching throughput (read the
  HDF5 image set, decode, forward, write the cache) for the same model and batch size, and their
  ratio (goal >= 0.90 on CPU);
- peak RSS of caching 10k and 100k rows, each in a fresh process: memory must not grow with N.

    .venv/bin/python bench/feature_cache.py [--n 4096] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ARCH, ARGS = "resnet10_small", {"width": 16, "stem_stride": 2}


def make_set(path: Path, n: int) -> None:
    """An n-row image set in the real format: the default train split's first chunks, repeated."""
    from spurlab.config import load_config
    from spurlab.data.imagesets import ImageSetWriter
    from spurlab.data.sets import build_plan

    cfg = load_config(ROOT / "config" / "config.yaml")
    plan, attrs = build_plan(cfg, "train")
    chunks = [plan.chunk(k) for k in range(min(8, plan.n_chunks))]
    with ImageSetWriter(path, n, attrs) as w:
        row = 0
        while row < n:
            rec = chunks[(row // 256) % len(chunks)]
            m = min(len(rec["labels"]), n - row)
            w.append(
                {k: (v[:m] if not isinstance(v, dict) else {c: a[:m] for c, a in v.items()}) for k, v in rec.items()}
            )
            row += m


def model():
    from spurlab.models import build_classifier

    torch.manual_seed(0)
    return build_classifier(ARCH, 10, 64, ARGS).eval()


def rss_child(set_path: str, batch: int) -> None:
    """Run inside a subprocess: cache features, print peak RSS in MiB."""
    from spurlab.data.imagesets import ImageSet
    from spurlab.features import cache_features

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        cache_features(model(), "bench", "0" * 64, ImageSet(set_path), Path(d) / "f.h5", torch.device("cpu"),
                       batch_size=batch, progress=False)  # fmt: skip
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="rows for the throughput ratio")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="alternating measurements of each")
    ap.add_argument("--rss-rows", type=int, nargs=2, default=[10_000, 100_000])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return rss_child(args.child[0], int(args.child[1]))

    from spurlab.data.imagesets import ImageSet
    from spurlab.features import cache_features

    torch.set_num_threads(2)
    m = model()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_set(d / "set.h5", args.n)
        s = ImageSet(d / "set.h5")
        x = torch.from_numpy(s.images()).permute(0, 3, 1, 2).float().div_(255)

        def bare_forward() -> float:
            t = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(x), args.batch_size):
                    m.forward_with_features(x[i : i + args.batch_size])
            return len(x) / (time.perf_counter() - t)

        def full_caching() -> float:
            t = time.perf_counter()
            cache_features(
                m, "bench", "0" * 64, s, d / "f.h5", torch.device("cpu"), batch_size=args.batch_size, progress=False
            )
            return args.n / (time.perf_counter() - t)

        bare_forward()  # warm-up
        # alternate the two measurements and compare medians: both see the same machine state
        runs = [(bare_forward(), full_caching()) for _ in range(args.repeats)]
        bare = float(np.median([r[0] for r in runs]))
        full = float(np.median([r[1] for r in runs]))
        print(f"feature cache, {ARCH} {ARGS} on {args.n} images of 64x64, batch {args.batch_size}, 2 threads")
        print(f"  bare forward (preloaded tensors): {bare:8.0f} images/s")
        print(f"  full caching (HDF5 in and out):   {full:8.0f} images/s")
        print(f"  ratio full / bare: {full / bare:.3f}   (goal >= 0.90; medians of {args.repeats} alternating runs)")
        for rows in args.rss_rows:
            make_set(d / f"rss{rows}.h5", rows)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", str(d / f"rss{rows}.h5"), str(args.batch_size)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            rss = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]
            print(f"  peak RSS caching {rows:>7} rows: {rss:7.0f} MiB   ({time.perf_counter() - t:.0f}s)")
            (d / f"rss{rows}.h5").unlink()


if __name__ == "__main__":
    main()
