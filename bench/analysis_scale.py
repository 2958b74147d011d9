"""Streaming analysis at ImageNet scale (issue #10, point 4): wall time and peak RSS of each stage.

Synthetic data in the pipeline's own formats, then the package's stage functions, each in a fresh
process (so each step's peak RSS is its own):

- a feature cache of the discovery model on "train": N x D float16 features (default N = 1,281,000
  = 1000 classes x 1281, D = 2048: 5.2 GB) with float32 logits (N x 1000: 5.1 GB), preds, labels,
  ids; classes interleaved as in an image set; features from `bench/npca.py`'s generator (class
  means + shared low-rank factors + noise, ReLU), logits noise with a margin on the label (~75% top-1);
- a "val" set (50 per class) cached for `--models` models (logits, preds; the discovery model's
  features too); the other models' train caches are not needed by any stage timed here;
- minimal index image sets (labels, ids, hashes; no files) and resnet50-shaped model directories
  (random weights: only the head W, b and the checkpoint hash are used);
- annotations like Salient ImageNet's (630 spurious of 5000 (class, top-5 feature) pairs, over 357
  classes), from the importance step's own top-5.

Steps timed: importance (IV over train, prediction grouping), rankings (spuriosity of every train
and val image, train statistics), gaps (every model, k = 10 on val), npca (all classes, top 128,
the pipeline's default solver). Goal: every step's peak RSS <= 3 GB whatever N.

Measured on a shared 2-core machine, D = 2048 float16, 1000 classes, 3 models (--no-train-logits),
peak RSS / wall (load average ~2.5):

    rows        importance          rankings            gaps               npca (all classes)
    128,000     1450 MiB / 13 s     1425 MiB / 9 s      912 MiB / 6 s      1638 MiB / 142 s
    640,000 *   1450 MiB / 45 s     1454 MiB / 21 s     963 MiB / 5 s      2200 MiB / 856 s
    1,281,000   1450 MiB / 63 s     1464 MiB / 35 s     1100 MiB / 4 s     2201 MiB / 602 s

    * load average 13-17: CPU seconds instead of wall.

Importance is flat in N; rankings grow only by their N-row table (+39 MiB for 10x N); npca's
~1 GB group buffer is full from ~260k rows on, hence its rise to 2.2 GB, then flat (2200 / 2201 MiB at 640k / 1.28M). Importance with
the former 65536-row blocks: 3592 MiB at 128,000 rows.

    .venv/bin/python bench/analysis_scale.py                 # full size (~16 GB of temporary files)
    .venv/bin/python bench/analysis_scale.py --rows 128000   # 1/10 scale
    [--classes 1000 --dim 2048 --models 3 --tmpdir DIR --keep --reuse DIR --npca-workers 1 --skip npca
     --no-train-logits]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BLOCK = 16384
GOAL_MIB = 3 * 1024
STEPS = ("importance", "rankings", "gaps", "npca")


def peak_rss_mib() -> float:
    """VmHWM of this process (see bench/npca.py: ru_maxrss would count a forking parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no /proc/self/status")


# ----------------------------------------------------------------------------- synthetic data


def _imageset(path: Path, name: str, labels: np.ndarray, class_names: list[str]) -> None:
    """A minimal *index* image set: labels and ids (what the analysis stages read), no files."""
    import h5py

    from spurlab.data.imagesets import FORMAT, FORMAT_VERSION

    n = len(labels)
    with h5py.File(path, "w") as f:
        f["labels"] = labels.astype(np.int64)
        f["ids"] = np.char.add(f"{name}-".encode(), np.char.zfill(np.arange(n).astype("S7"), 7))
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, kind="index", set_name=name,
                       class_names=json.dumps(class_names), label_kind="class", image_size=224, n_images=n,
                       sha256=f"synthetic-{name}-{n}", config="{}")  # fmt: skip


def _model(directory: Path, seed: int, class_names: list[str]) -> None:
    import torch

    from spurlab.models import build_classifier, save_model

    torch.manual_seed(seed)
    model = build_classifier("resnet50", len(class_names), 224).eval()
    save_model(model, directory, {"name": directory.name, "class_names": class_names})


def _finish_cache(path: Path, model: str, model_dir: Path, imageset: Path, rng, with_logits: bool = True) -> None:
    """Turn a file holding `features` and `labels` into a spurlab feature cache: logits (label
    margin), preds, index, attrs (the model's checkpoint hash and the image set's hash)."""
    import h5py

    from spurlab import __version__
    from spurlab.data.feature_cache import FORMAT, column_sha256, model_checkpoint_sha256
    from spurlab.data.imagesets import ImageSet

    s = ImageSet(imageset)
    with h5py.File(path, "r+") as f:
        labels = f["labels"][:]
        n, c = len(labels), len(s.class_names)
        d = f["features"].shape[1]
        lg = f.create_dataset("logits", (n, c), dtype="float32", chunks=(min(n, 1024), c)) if with_logits else None
        preds = f.create_dataset("preds", (n,), dtype="int64")
        for a in range(0, n, BLOCK):
            lb = labels[a : a + BLOCK]
            if lg is None:  # no logits to store: predictions right 75% of the time, else uniform
                preds[a : a + len(lb)] = np.where(rng.random(len(lb)) < 0.75, lb, rng.integers(0, c, len(lb)))
                continue
            z = rng.standard_normal((len(lb), c), dtype=np.float32)
            z[np.arange(len(lb)), lb] += 3.2  # ~75% top-1 with 1000 classes
            lg[a : a + len(lb)] = z
            preds[a : a + len(lb)] = z.argmax(1)
        f["index"] = s.ids
        f.attrs.update(format=FORMAT, model=model, arch="resnet50", checkpoint_sha256=model_checkpoint_sha256(model_dir),
                       imageset=s.attrs["set_name"], imageset_sha256=s.sha256, class_names=json.dumps(s.class_names),
                       n_rows=n, num_features=d, num_classes=c, feature_dtype="float16", code_version=__version__,
                       labels_sha256=column_sha256(labels), index_sha256=column_sha256(s.ids))  # fmt: skip


def make_data(work: Path, rows: int, classes: int, dim: int, n_models: int, val_per_class: int, seed: int = 0,
              train_logits: bool = True):  # fmt: skip
    import h5py

    sys.path.insert(0, str(HERE))
    from npca import make_features  # the same synthetic spectrum as the NPCA bench

    rng = np.random.default_rng(seed + 1)
    names = [f"n{k:08d}" for k in range(classes)]
    models = [f"m{i}" for i in range(n_models)]
    for i, m in enumerate(models):
        _model(work / "models" / m, i, names)
    per_class = max(2, rows // classes)
    (work / "features").mkdir()
    for set_name, pc in (("train", per_class), ("val", val_per_class)):
        path = work / "features" / f"m0_{set_name}.h5"
        make_features(path, classes, dim, pc, seed=seed + (set_name == "val"))
        with h5py.File(path, "r") as f:
            labels = f["labels"][:]
        _imageset(work / f"{set_name}.h5", set_name, labels, names)
        _finish_cache(path, "m0", work / "models" / "m0", work / f"{set_name}.h5", rng,
                      with_logits=train_logits or set_name == "val")  # fmt: skip
        path.with_suffix(".npz").unlink()
    with h5py.File(work / "features" / "m0_val.h5", "r") as f:
        val_labels = f["labels"][:]
    for m in models[1:]:  # the other models: only their val caches are read (preds, labels)
        path = work / "features" / f"{m}_val.h5"
        with h5py.File(path, "w") as f:
            f["labels"] = val_labels
            f.create_dataset(
                "features", (len(val_labels), dim), dtype="float16", chunks=(min(1024, len(val_labels)), dim)
            )  # declared, never written: not read
        _finish_cache(path, m, work / "models" / m, work / "val.h5", rng)
    return models


def write_annotations(work: Path, seed: int = 0) -> None:
    """Salient ImageNet's proportions: 630 of the 5000 top-5 pairs spurious, over 357 classes."""
    import h5py
    import pandas as pd

    from spurlab.discover.annotate import ANNOTATION_COLUMNS
    from spurlab.io.tables import write_table

    with h5py.File(work / "importance.h5", "r") as f:
        top = f["top"][:, :5]
        names = json.loads(f.attrs["class_names"])
    rng = np.random.default_rng(seed)
    classes = len(top)
    n_cls = min(classes, round(357 * classes / 1000))
    chosen = rng.choice(classes, n_cls, replace=False)
    n_spur = np.zeros(classes, dtype=int)
    n_spur[chosen] = 1
    extra = rng.choice(chosen, min(len(chosen), round(630 * classes / 1000) - n_cls), replace=False)
    n_spur[extra] += 1
    rows = []
    for c in range(classes):
        for r, j in enumerate(top[c]):
            spur = r < n_spur[c]
            rows.append({"class_index": c, "class_name": names[c], "feature_index": int(j), "feature_rank": r + 1,
                         "label": "spurious" if spur else "core", "kind": "background" if spur else "main_object",
                         "votes_main": 0 if spur else 5, "votes_separate": 0, "votes_background": 5 if spur else 0,
                         "n_votes": 5, "mean_confidence": 4.0, "source": "human"})  # fmt: skip
    write_table(pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS)), work / "annotations.parquet",
                {"synthetic": True})  # fmt: skip


# ----------------------------------------------------------------------------- steps (children)


def run_step(step: str, work: Path, models: list[str], npca_workers: int) -> dict:
    feats = {s: str(work / "features" / f"m0_{s}.h5") for s in ("train", "val")}
    mdir = str(work / "models" / "m0")
    if step == "importance":
        from spurlab.discover.importance import ImportanceSettings, run_importance

        return run_importance(
            feats["train"],
            mdir,
            work / "importance.h5",
            work / "importance.parquet",
            ImportanceSettings("prediction", 5),
        )
    if step == "rankings":
        from spurlab.measure.spuriosity import RankingSettings, run_rankings

        sets = {s: str(work / f"{s}.h5") for s in ("train", "val")}
        return run_rankings(
            work / "annotations.parquet", mdir, feats, sets, work / "rankings.parquet", RankingSettings("train")
        )
    if step == "gaps":
        from spurlab.measure.spuriosity import GapSettings, run_gaps

        ms = {m: (str(work / "models" / m), str(work / "features" / f"{m}_val.h5")) for m in models}
        return run_gaps(work / "rankings.parquet", ms, work / "gaps.parquet", work / "gap_models.parquet",
                        work / "gap_correlations.parquet", GapSettings("val", 10))  # fmt: skip
    if step == "npca":
        from spurlab.discover.npca import NpcaSettings, run_npca

        r = run_npca(
            feats["train"], mdir, work / "npca.h5", NpcaSettings(components=128), progress=True, workers=npca_workers
        )
        return {"classes": r["classes"], "skipped": len(r["skipped"])}
    raise ValueError(step)


def child(args) -> None:
    t, cpu = time.perf_counter(), time.process_time()
    info = run_step(args.child, Path(args.work), args.model_names.split(","), args.npca_workers)
    # CPU seconds beside wall: on a shared machine wall time mostly measures the neighbours
    out = {
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mib": peak_rss_mib(),
        "info": info,
    }
    print("RESULT " + json.dumps(out, default=str), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_281_167, help="train rows (ImageNet: 1,281,167)")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--models", type=int, default=3, help="models whose val logits are cached (gaps)")
    p.add_argument("--val-per-class", type=int, default=50)
    p.add_argument(
        "--no-train-logits",
        action="store_true",
        help="leave the train cache's logits out (no step reads them; saves N x 1000 x 4 bytes of writing)",
    )
    p.add_argument("--npca-workers", type=int, default=1)
    p.add_argument("--skip", nargs="*", default=[], choices=STEPS)
    p.add_argument("--tmpdir", default=None)
    p.add_argument("--keep", action="store_true", help="keep the temporary files")
    p.add_argument("--reuse", help="a directory kept by --keep: skip generating the data")
    p.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--model-names", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    work = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="analysis_scale_", dir=args.tmpdir))
    try:
        t = time.perf_counter()
        if args.reuse:
            models = sorted(p.name for p in (work / "models").iterdir())
        else:
            models = make_data(work, args.rows, args.classes, args.dim, args.models, args.val_per_class,
                               train_logits=not args.no_train_logits)  # fmt: skip
        gen_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        import h5py

        with h5py.File(work / "features" / "m0_train.h5", "r") as f:
            n = f["features"].shape[0]
        print(f"data: {n:,} train rows x {args.dim} float16 ({args.classes} classes), "
              f"{args.val_per_class * args.classes:,} val rows x {args.models} models; "
              f"{size / 2**30:.1f} GiB written in {gen_s:.0f} s to {work}", flush=True)  # fmt: skip
        results = {}
        for step in STEPS:
            if step in args.skip or (step in ("rankings", "gaps") and "importance" in args.skip):
                continue
            if step == "rankings":
                write_annotations(work)
            cmd = [sys.executable, __file__, "--child", step, "--work", str(work), "--model-names", ",".join(models),
                   "--npca-workers", str(args.npca_workers)]  # fmt: skip
            r = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if r.returncode != 0 or not line:
                raise SystemExit(f"step {step} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
            results[step] = json.loads(line[0][7:])
            res = results[step]
            print(f"{step:11s} wall {res['wall_s']:8.1f} s   cpu {res.get('cpu_s', float('nan')):8.1f} s   peak RSS {res['peak_rss_mib']:7.0f} MiB   "
                  f"{'ok' if res['peak_rss_mib'] <= GOAL_MIB else 'OVER'} (goal <= {GOAL_MIB} MiB)   {res['info']}",
                  flush=True)  # fmt: skip
        worst = max(r["peak_rss_mib"] for r in results.values()) if results else float("nan")
        print(f"summary: rows {n:,}, max peak RSS {worst:.0f} MiB / goal {GOAL_MIB} MiB "
              f"(ratio {worst / GOAL_MIB:.2f}); total step wall {sum(r['wall_s'] for r in results.values()):.0f} s")  # fmt: skip
        print("RESULTS " + json.dumps({"rows": n, "generate_s": gen_s, "bytes": size, "steps": results}, default=str))
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
