"""Training throughput per model family: the CPU training loop before and after channels_last, and
the alternatives not taken, side by side.

Every measurement runs the suite's own epoch loop (`spurlab.train._train_epoch`: uint8 batches
held in memory, crop and flip on tensors, AdamW, L2-PGD for the robust model) on images rendered
by the default config's world, in one process and one run, so the ratios compare like with like:

- `nchw`: the loop as it was before CPU training went channels_last (model and batches
  contiguous, NCHW);
- `channels_last`: today's loop (`device.prepare_model(..., training=True)`: model and batches
  channels_last);
- `compiled`: today's loop on `torch.compile(model)` (inductor); the compile time is printed
  apart (paid once per training job; a warm inductor cache in the temp folder shortens it);
- `2 jobs x 1 thread`: two processes running today's loop at one thread each at once, their
  img/s summed (two one-core jobs side by side instead of one two-core job).

Ratios: `channels_last` to `nchw`, the others to `channels_last`. Each family of the default suite
(config/config.yaml `models`, built by `spurlab.train.training_plan` as `spurlab train` builds
them, robust settings included) is timed on a warm-up epoch and then a measured epoch of
`--images` images. Run it on a quiet machine: another job on the cores skews every column.

    .venv/bin/python bench/training.py [--images 1024] [--families erm_cbr_w8_s2 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("nchw", "channels_last", "compiled")


def rendered_batches(cfg: dict, n: int):
    """`n` images of the config's world (uint8, in memory) with their labels, as the loop reads them."""
    from spurlab.data import synth
    from spurlab.train import InMemoryBatches

    world = synth.World.from_config(cfg["datasets"])
    labels = synth.balanced_labels(0, 0, n, len(world.classes))
    lat = synth.draw_latents(synth.chunk_rng(0, 0, 0), n, world)
    flags = synth.draw_cue_flags(world, labels, lat)
    shapes = np.asarray(world.classes, dtype=object)[labels]
    out = synth.render(world, shapes, lat, flags, np.ones(n, dtype=bool))
    return InMemoryBatches(torch.from_numpy(out["images"]), torch.from_numpy(labels).long())


@contextlib.contextmanager
def nchw_batches():
    """The loop before channels_last: its batches stay contiguous on CPU."""
    import spurlab.train as train

    today = train.to_device
    train.to_device = lambda x, device, training=False: x.to(device)
    try:
        yield
    finally:
        train.to_device = today


def epoch_seconds(cfg: dict, name: str, variant: str, n: int, threads: int) -> tuple[float, float]:
    """(seconds of the measured epoch, seconds of the warm-up epoch) of family `name` as `variant`."""
    from spurlab.device import prepare_model
    from spurlab.models import build_classifier
    from spurlab.models.robust import scale_eps
    from spurlab.train import _train_epoch, make_optimizer, training_plan

    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: one of {VARIANTS}")
    torch.set_num_threads(threads)
    plan = training_plan(cfg, name)
    s = plan["settings"]
    data = rendered_batches(cfg, n)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = build_classifier(plan["arch"], len(cfg["datasets"]["classes"]), data.image_size, plan["arch_args"])
    model = prepare_model(model, cpu, training=variant != "nchw")
    if variant == "compiled":
        model = torch.compile(model)
    opt = make_optimizer(model, s)
    eps = scale_eps(s.eps_224, data.image_size, data.image_size) if s.robust else 0.0
    times = []
    with nchw_batches() if variant == "nchw" else contextlib.nullcontext():
        for epoch in (1, 2):
            start = time.perf_counter()
            _train_epoch(model, opt, data, epoch, s, seed=0, eps=eps, device=cpu, progress=False)
            times.append(time.perf_counter() - start)
    return times[1], times[0]


def _job(cfg: dict, name: str, n: int, barrier, results) -> None:
    barrier.wait()  # both jobs start together
    results.put(epoch_seconds(cfg, name, "channels_last", n, threads=1)[0])


def two_one_thread_jobs(cfg: dict, name: str, n: int) -> float:
    """Summed img/s of two concurrent one-thread processes, each warm-up then measured epoch."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    jobs = [ctx.Process(target=_job, args=(cfg, name, n, barrier, results)) for _ in range(2)]
    for job in jobs:
        job.start()
    seconds = [results.get() for _ in jobs]
    for job in jobs:
        job.join()
    return sum(n / s for s in seconds)


def main() -> None:
    from spurlab.config import load_config

    cfg = load_config(ROOT / "config" / "config.yaml")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024, help="images per epoch (warm-up and measured)")
    ap.add_argument("--threads", type=int, default=2, help="threads of a training job (the rules' 2)")
    ap.add_argument("--families", nargs="*", default=list(cfg["models"]), help="models of the config")
    args = ap.parse_args()
    print(f"img/s of a training epoch of {args.images} images, batch {cfg['train']['batch_size']}, "
          f"{args.threads} threads; channels_last's ratio to nchw, the others' to channels_last")  # fmt: skip
    header = ("family", "nchw", "channels_last", "compiled", "compile s", "2 jobs x 1 thread")
    print(f"{header[0]:<22} {header[1]:>6} {header[2]:>16} {header[3]:>16} {header[4]:>10} {header[5]:>19}")
    for name in args.families:
        seconds = {v: epoch_seconds(cfg, name, v, args.images, args.threads) for v in VARIANTS}
        rate = {v: args.images / measured for v, (measured, _) in seconds.items()}
        compile_s = seconds["compiled"][1] - seconds["compiled"][0]  # the warm-up's extra time over an epoch
        pair = two_one_thread_jobs(cfg, name, args.images)
        today = rate["channels_last"]
        print(f"{name:<22} {rate['nchw']:6.0f} {today:8.0f} ({today / rate['nchw']:4.2f}) "
              f"{rate['compiled']:8.0f} ({rate['compiled'] / today:4.2f}) {compile_s:10.1f} "
              f"{pair:11.0f} ({pair / today:4.2f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
