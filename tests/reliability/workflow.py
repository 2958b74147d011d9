"""Helpers shared by the reliability workflow tests and bench/kill_resume.py: run Snakemake, kill it
with its jobs at chosen moments, hash and compare result trees, open and verify every output."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Files under results/ whose bytes may differ between two clean runs, and why (docs/reliability.md).
# Everything else must be byte-identical. These are compared with their timing fields removed.
TIMING_KEYS = {"seconds", "train_seconds", "wall_seconds", "images_per_second", "images_per_second_threads"}
EXCLUDED = {
    "results/models/*/meta.json": "training record holds wall-clock seconds per epoch and in total",
    "results/models/*/checkpoints/epoch_*.pt": "the checkpoint's history holds the same seconds",
    "results/bam/models/*/meta.json": "the same training record, for BAM's models",
    "results/bam/models/*/checkpoints/epoch_*.pt": "the same checkpoint history, for BAM's models",
    "results/posthoc/models/*/meta.json": "the same training record, for Adebayo et al.'s models",
    "results/posthoc/models/*/checkpoints/epoch_*.pt": "the same checkpoint history, for Adebayo et al.'s models",
    "results/models/summary.json": "copies each model's train_seconds",
    "results/datasets/summary.json": "holds the generator's measured images_per_second",
}


def env_with_venv() -> dict:
    return dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))


def snakemake_cmd(work: Path, targets, configs, *extra) -> list[str]:
    # targets first: --configfile and --forcerun take several values
    return ["snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2",
            *extra, "--configfile", *map(str, configs)]  # fmt: skip


def run(work, targets, configs, *extra, env=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        snakemake_cmd(work, targets, configs, *extra), capture_output=True, text=True, env=env or env_with_venv()
    )
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(extra)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def planned_outputs(work, targets, configs, *extra, env=None) -> set[str]:
    """Outputs of every job a dry run would execute (paths relative to `work`)."""
    r = run(work, targets, configs, "-n", *extra, env=env)
    outs = set()
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r"\s+output: (.*)$", line)
        if m:
            outs.update(p.strip() for p in m.group(1).split(","))
    return outs


def run_with_kill(work, targets, configs, kill_when, env=None, timeout=900) -> bool:
    """Start snakemake in its own process group; once `kill_when()` is true, SIGKILL the whole group
    (snakemake and every job it started). Returns True if it was killed, False if it finished first."""
    cmd = snakemake_cmd(work, targets, configs, "--rerun-incomplete")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or env_with_venv(),
                         start_new_session=True)  # fmt: skip
    t0 = time.monotonic()
    try:
        while p.poll() is None:
            if kill_when(time.monotonic() - t0):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return True
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"snakemake ran longer than {timeout}s")
            time.sleep(0.05)
        if p.returncode != 0:  # a run that fails on its own is a finding, not "finished first"
            raise AssertionError(f"snakemake exited with {p.returncode} before the kill ({' '.join(cmd)})")
        return False
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def unlock(work, targets, configs, env=None) -> None:
    """After a SIGKILL the lock stays: release it (what a person would do: snakemake --unlock)."""
    run(work, targets, configs, "--unlock", env=env)


def files(work: Path) -> dict[str, str]:
    """sha256 of every file under results/ (relative path -> hex digest)."""
    out = {}
    for p in sorted((Path(work) / "results").rglob("*")):
        if p.is_file():
            out[str(p.relative_to(work))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def is_excluded(rel: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(rel, pat) for pat in EXCLUDED)


def _strip_timing(obj):
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def same_without_timing(a: Path, b: Path) -> bool:
    """An excluded file equals its twin once the timing fields are removed (tensors bitwise)."""
    if a.suffix == ".json":
        return _strip_timing(json.loads(a.read_text())) == _strip_timing(json.loads(b.read_text()))
    if a.suffix == ".pt":
        import torch

        x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
        if _strip_timing(x["history"]) != _strip_timing(y["history"]) or x["fingerprint"] != y["fingerprint"]:
            return False
        tensors = lambda s: {k: v for k, v in _flat(s).items() if isinstance(v, torch.Tensor)}  # noqa: E731
        tx, ty = tensors(x["model"]) | tensors(x["optimizer"]), tensors(y["model"]) | tensors(y["optimizer"])
        return tx.keys() == ty.keys() and all(torch.equal(tx[k], ty[k]) for k in tx)
    raise ValueError(f"no timing-free comparison for {a}")


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}/"))
        return out
    return {prefix: obj}


def compare_trees(a: Path, b: Path, common_only: bool = False, a_may_have_more: bool = False) -> list[str]:
    """Differences between two runs' results/: missing files, and files that differ (excluded files
    only in their non-timing content). Empty list = identical. `common_only` compares only the files
    both have (a killed run against its clean twin); `a_may_have_more` lets `a` hold files `b` lacks
    (a reference run of more targets), while every file of `b` must be in `a`."""
    fa, fb = files(a), files(b)
    problems = []
    if not common_only:
        problems += [] if a_may_have_more else [f"only in {a}: {k}" for k in sorted(fa.keys() - fb.keys())]
        problems += [f"only in {b}: {k}" for k in sorted(fb.keys() - fa.keys())]
    for k in sorted(fa.keys() & fb.keys()):
        if fa[k] == fb[k]:
            continue
        if not (is_excluded(k) and same_without_timing(Path(a) / k, Path(b) / k)):
            problems.append(f"differs: {k}")
    return problems


def verify_outputs(work: Path, allow_tmp: bool = False) -> int:
    """Open every output and check every recorded hash (image sets' content hashes, feature caches
    against their model and image set, models loadable, every other HDF5 file, Parquet table and
    JSON file readable, no temporary files unless `allow_tmp`: right after a SIGKILL a killed
    writer's temporary file is expected, its next writer removes it).
    Returns the number of files checked; raises on the first problem."""
    import h5py
    import pyarrow.parquet as pq

    from spurlab.data.feature_cache import open_features
    from spurlab.data.imagesets import open_imageset
    from spurlab.models import load_model

    work = Path(work)
    n = 0
    tmp = [p for p in (work / "results").rglob("*") if p.name.endswith(".tmp")]
    assert allow_tmp or not tmp, f"temporary files left: {tmp}"
    for p in sorted((work / "results/datasets").glob("*.h5")):
        with open_imageset(p) as s:
            s.verify()
        n += 1
    for d in sorted(p.parent for p in (work / "results/models").glob("*/model.safetensors")):
        load_model(d)
        n += 1
    for p in sorted((work / "results/features").glob("*/*.h5")):
        with open_features(
            p, model_dir=work / "results/models" / p.parent.name, imageset=work / "results/datasets" / p.name
        ) as fc:
            for name in ("features", "logits"):
                fc[name]  # noqa: B018 - reads and checks every value is finite
        n += 1
    for p in sorted((work / "results").rglob("*.json")):
        json.loads(p.read_text())
        n += 1
    for p in sorted((work / "results").rglob("*.h5")):
        with h5py.File(p, "r") as f:
            f.visit(lambda name: None)  # walks every group: a truncated file fails here
        n += 1
    for p in sorted((work / "results").rglob("*.parquet")):
        pq.read_table(p)
        n += 1
    return n
