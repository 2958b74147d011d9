"""Training throughput per model family: today's loop against the alternatives, side by side.

Every measurement runs the suite's own epoch loop (`spurlab.train._train_epoch`: uint8 batches
held in memory, crop and flip on tensors, AdamW, L2-PGD for the robust model) on images rendered
by the default config's world, in one process and one run, so the ratios compare like with like:

- `eager`: the loop as `spurlab train` runs it on CPU (NCHW, eager, the job's 2 threads);
- `channels_last`: model and batches channels_last (what CUDA gets);
- `compiled`: `torch.compile(model)` (inductor); its compile time is printed apart, and is paid
  once per training job;
- `2 jobs x 1 thread`: two processes each training the family at one thread at once, their
  img/s summed (two one-core jobs side by side instead of one two-core job).

Each family of the default suite (config/config.yaml `models`, built by
`spurlab.train.training_plan` as `spurlab train` builds them, robust settings included) is timed
on a warm-up epoch and then a measured epoch of `--images` images. Run it on a quiet machine:
another job on the cores skews every column. None of the alternatives is the default: each
changes the trained weights, and a full run with channels_last training changed three of the
benchmark's verdicts (docs/performance.md#training-throughput).

    .venv/bin/python bench/training.py [--images 1024] [--families erm_cbr_w8_s2 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


class ChannelsLast(torch.nn.Module):
    """The model with its batches turned channels_last on the way in (the loop keeps NCHW on CPU)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def rendered_batches(cfg: dict, n: int):
    """`n` images of the default world (uint8, in memory) with their labels, as the loop reads them."""
    from spurlab.data import synth
    from spurlab.train import InMemoryBatches

    world = synth.World.from_config(cfg["datasets"])
    labels = synth.balanced_labels(0, 0, n, len(world.classes))
    lat = synth.draw_latents(synth.chunk_rng(0, 0, 0), n, world)
    flags = synth.draw_cue_flags(world, labels, lat)
    shapes = np.asarray(world.classes, dtype=object)[labels]
    out = synth.render(world, shapes, lat, flags, np.ones(n, dtype=bool))
    return InMemoryBatches(torch.from_numpy(out["images"]), torch.from_numpy(labels).long())


def epoch_seconds(cfg: dict, name: str, variant: str, n: int, threads: int) -> tuple[float, float]:
    """(seconds of the measured epoch, seconds of the warm-up epoch) of family `name` as `variant`."""
    from spurlab.models import build_classifier
    from spurlab.models.robust import scale_eps
    from spurlab.train import _train_epoch, make_optimizer, training_plan

    torch.set_num_threads(threads)
    plan = training_plan(cfg, name)
    s = plan["settings"]
    data = rendered_batches(cfg, n)
    torch.manual_seed(0)
    model = build_classifier(plan["arch"], len(cfg["datasets"]["classes"]), data.image_size, plan["arch_args"])
    if variant == "channels_last":
        model = ChannelsLast(model)
    elif variant == "compiled":
        model = torch.compile(model)
    opt = make_optimizer(model, s)
    eps = scale_eps(s.eps_224, data.image_size, data.image_size) if s.robust else 0.0
    times = []
    for epoch in (1, 2):
        start = time.perf_counter()
        _train_epoch(model, opt, data, epoch, s, seed=0, eps=eps, device=torch.device("cpu"), progress=False)
        times.append(time.perf_counter() - start)
    return times[1], times[0]


def _job(cfg: dict, name: str, n: int, barrier, results) -> None:
    barrier.wait()  # both jobs start together
    results.put(epoch_seconds(cfg, name, "eager", n, threads=1)[0])


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
          f"{args.threads} threads; ratio to eager in brackets")  # fmt: skip
    print(
        f"{'family':<22} {'eager':>7} {'channels_last':>16} {'compiled':>16} {'compile s':>10} {'2 jobs x 1 thread':>19}"
    )
    for name in args.families:
        eager, _ = epoch_seconds(cfg, name, "eager", args.images, args.threads)
        cl, _ = epoch_seconds(cfg, name, "channels_last", args.images, args.threads)
        comp, comp_warm = epoch_seconds(cfg, name, "compiled", args.images, args.threads)
        pair = two_one_thread_jobs(cfg, name, args.images)
        rate = {k: args.images / v for k, v in (("eager", eager), ("cl", cl), ("comp", comp))}
        compile_s = comp_warm - comp  # the warm-up epoch's extra time over a compiled epoch
        print(f"{name:<22} {rate['eager']:7.0f} {rate['cl']:8.0f} ({rate['cl'] / rate['eager']:4.2f}) "
              f"{rate['comp']:8.0f} ({rate['comp'] / rate['eager']:4.2f}) {compile_s:10.1f} "
              f"{pair:11.0f} ({pair / rate['eager']:4.2f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
