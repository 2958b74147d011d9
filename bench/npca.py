"""Class-wise neural PCA: the truncated route vs the full-eigh reference (issue #6, point 2).

One run prints:
- our route (`spurlab.discover.npca.fit_npca`, by default the pipeline's `solver: auto`, i.e.
  randomised subspace iteration on the float32 Gram matrix + float64 Rayleigh-Ritz, top L; `--solver
  exact` for the subset-eigh route) over every class, `--workers` classes at a time, streamed from a temporary HDF5 of synthetic float16 features with the classes interleaved
  as in a feature cache: wall time (reads included) and peak RSS, in a fresh process;
- the reference route (full D x D covariance + numpy.linalg.eigh per class), timed in a fresh
  process on --reference-classes random classes and scaled to all classes (its reads excluded);
- the speed ratio and the agreement of the top-L subspaces on the timed classes,
  mean ||V_ours V_ref^T||_F^2 / L (1.0 = identical), beside the goals.

Synthetic features: ReLU of a class mean + class-weighted shared low-rank factors (power-law scales)
+ noise with decaying per-dimension scales, so the spectrum decays as real penultimate features do.

    .venv/bin/python bench/npca.py [--classes 1000 --dim 2048 --per-class 1300 --components 128]
                                   [--reference-classes 20] [--threads N] [--tmpdir DIR]
                                   [--solver auto|exact|randomized --oversample 96 --power-iterations 2]
                                   [--workers N]
    quick check: .venv/bin/python bench/npca.py --classes 20 --reference-classes 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

RANK, BLOCK = 64, 16384


def make_features(path: Path, classes: int, dim: int, per_class: int, seed: int = 0) -> None:
    """features float16 (N, D) written in blocks, labels (N,) interleaved; W, b in an .npz beside it."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    factors = (rng.standard_normal((RANK, dim)) * (np.arange(1, RANK + 1) ** -0.7)[:, None]).astype(np.float32)
    loadings = rng.gamma(1.0, 1.0, (classes, RANK)).astype(np.float32)  # which factors each class uses
    means = rng.gamma(2.0, 0.25, (classes, dim)).astype(np.float32)
    noise = (0.3 * rng.permutation(np.arange(1, dim + 1) ** -0.5)).astype(np.float32)
    with h5py.File(path, "w") as f:
        feats = f.create_dataset("features", (n, dim), dtype="float16", chunks=(min(n, 1024), dim))
        f["labels"] = labels
        for s in range(0, n, BLOCK):
            lb = labels[s : s + BLOCK]
            g = rng.standard_normal((len(lb), RANK), dtype=np.float32) * loadings[lb]
            z = means[lb] + g @ factors + rng.standard_normal((len(lb), dim), dtype=np.float32) * noise
            feats[s : s + len(lb)] = np.maximum(z, 0).astype(np.float16)
    np.savez(path.with_suffix(".npz"), W=rng.standard_normal((classes, dim)), b=rng.standard_normal(classes))


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM where there is one: after fork/vfork + exec, ru_maxrss also
    counts the parent's peak (Linux keeps the larger of the old and new memory maps' high water)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(path: Path, components: int, ref_classes: list[int], buffer_mib: int, opts: dict) -> dict:
    from spurlab.discover.npca import fit_npca

    head = np.load(path.with_suffix(".npz"))
    keep = {}
    t, cpu = time.perf_counter(), time.process_time()
    with h5py.File(path, "r") as f:
        fits = fit_npca(f["features"], f["labels"][:], head["W"], head["b"], components, progress=False,
                        buffer_bytes=buffer_mib << 20, **opts)  # fmt: skip
        for r in fits:
            if r.k in ref_classes:
                keep[r.k] = (r.V, r.eigvals)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    np.savez(path.with_name("ours.npz"), **{f"V{k}": v for k, (v, _) in keep.items()},
             **{f"e{k}": e for k, (_, e) in keep.items()})  # fmt: skip
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()}


def child_ref(path: Path, components: int, ref_classes: list[int], _buffer_mib: int, _opts: dict) -> dict:
    head = np.load(path.with_suffix(".npz"))
    out, times, cpu = {}, [], []
    with h5py.File(path, "r") as f:
        labels = f["labels"][:]
        for k in ref_classes:
            phi = f["features"][np.flatnonzero(labels == k)]  # reads: not timed
            t, c = time.perf_counter(), time.process_time()
            a = phi.astype(np.float64) * head["W"][k]
            x = a - a.mean(0)
            w, v = np.linalg.eigh(x.T @ x / len(a))
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            out[f"V{k}"], out[f"e{k}"] = v[:, ::-1][:, :components].T, w[::-1][:components]
            out[f"s{k}"] = w[::-1][: components + 1]
    np.savez(path.with_name("ref.npz"), **out)
    return {"per_class_s": np.mean(times), "per_class_cpu_s": np.mean(cpu), "peak_rss_mib": peak_rss_mib()}


def run_child(args, which: str, path: Path, ref_classes: list[int]) -> dict:
    env = dict(os.environ)
    if args.threads:
        env.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    cmd = [sys.executable, __file__, "--child", which, str(path), json.dumps(ref_classes),
           "--components", str(args.components), "--buffer-mib", str(args.buffer_mib), "--opts", json.dumps(opts(args))]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{which} route failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def opts(args) -> dict:
    return {
        "solver": args.solver,
        "oversample": args.oversample,
        "power_iterations": args.power_iterations,
        "workers": args.workers,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--per-class", type=int, default=1300)
    ap.add_argument("--components", type=int, default=128)
    ap.add_argument("--reference-classes", type=int, default=20, help="classes the reference is timed on")
    ap.add_argument("--buffer-mib", type=int, default=1024, help="fit_npca's row buffer (passes ~ file / buffer)")
    ap.add_argument("--threads", type=int, help="BLAS threads in both routes (default: the libraries' own)")
    ap.add_argument("--tmpdir", help="where the temporary HDF5 goes (default: the system's)")
    ap.add_argument("--solver", default="auto", choices=["auto", "exact", "randomized"], help="our route's solver")
    ap.add_argument("--oversample", type=int, default=96, help="randomised solver: extra columns p")
    ap.add_argument("--power-iterations", type=int, default=2, help="randomised solver: q")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="classes fitted at once (threads)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, path, ref = args.child
        fn = child_ours if which == "ours" else child_ref
        return print(
            json.dumps(fn(Path(path), args.components, json.loads(ref), args.buffer_mib, json.loads(args.opts)))
        )

    c, d, m, top = args.classes, args.dim, args.per_class, args.components
    ref_classes = sorted(np.random.default_rng(1).choice(c, min(args.reference_classes, c), replace=False).tolist())
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "features.h5"
        t = time.perf_counter()
        make_features(path, c, d, m)
        gen = time.perf_counter() - t
        print(f"neural PCA, {c} classes x D={d} x {m} rows per class, float16 HDF5 "
              f"({path.stat().st_size / 2**30:.2f} GiB, classes interleaved; written in {gen:.0f}s), top {top}")  # fmt: skip
        ours = run_child(args, "ours", path, ref_classes)
        ref = run_child(args, "ref", path, ref_classes)
        a, r = np.load(Path(tmp) / "ours.npz"), np.load(Path(tmp) / "ref.npz")
        agree, ev_err, gaps, tails = [], [], [], []
        for k in ref_classes:
            v, vr = a[f"V{k}"], r[f"V{k}"]
            agree.append(np.linalg.norm(v @ vr[: len(v)].T) ** 2 / len(v))
            ev_err.append(np.max(np.abs(a[f"e{k}"] - r[f"e{k}"][: len(v)]) / r[f"e{k}"][: len(v)]))
            s = r[f"s{k}"]
            tails.append(s[min(top, len(s)) - 1] / s[0])
            gaps.append(s[-1] / s[-2] if len(s) > top else np.nan)
    ref_total = ref["per_class_s"] * c
    threads = args.threads or "library default"
    print(f"  our settings: {opts(args)}")
    print(f"  ours (streamed from HDF5, reads included): {ours['wall_s']:8.1f} s   (goal <= 120 s)   "
          f"{ours['wall_s'] / c * 1e3:.0f} ms/class, CPU {ours['cpu_s']:.1f} s")  # fmt: skip
    print(f"  reference (covariance + numpy eigh):      {ref_total:8.1f} s   = {ref['per_class_s']:.3f} s/class "
          f"timed on {len(ref_classes)} random classes x {c} (scaled; its reads not counted), "
          f"CPU {ref['per_class_cpu_s'] * c:.1f} s")  # fmt: skip
    print(f"  speed ratio reference / ours:             {ref_total / ours['wall_s']:8.1f} x   (goal >= 8)")
    print(f"  peak RSS ours:                            {ours['peak_rss_mib'] / 1024:8.2f} GiB (goal <= 3)   "
          f"reference: {ref['peak_rss_mib'] / 1024:.2f} GiB")  # fmt: skip
    print(f"  top-{top} subspace agreement (mean over the {len(ref_classes)} timed classes): "
          f"{np.mean(agree):.6f}  min {np.min(agree):.6f}   (goal >= 0.999)")  # fmt: skip
    print(f"  eigenvalues, max relative difference: {np.max(ev_err):.1e};  spectrum: lambda_{top}/lambda_1 "
          f"{np.mean(tails):.1e}, lambda_{top + 1}/lambda_{top} {np.nanmean(gaps):.3f}   (BLAS threads: {threads})")  # fmt: skip


if __name__ == "__main__":
    main()
