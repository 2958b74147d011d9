"""Training and inference throughput on CPU: channels_last against the default contiguous layout.

For every architecture of the default model suite (config/config.yaml), one run prints images/s
of a training step (forward, backward, AdamW step; the config's train batch size) and of a
no-grad forward (the config's eval batch size, as feature caching runs it) in both memory
formats, and their ratio. `device.prepare_model` keeps CPU models contiguous because of these
ratios: on 2 CPU threads channels_last trains 1.02-1.23x as fast and runs inference 0.92-1.54x as
fast, no uniform gain, and a switch would change every trained model's bytes (CUDA gets it). Run
it on a quiet machine: another job on the cores skews both sides.

    .venv/bin/python bench/memory_format.py [--threads 2] [--seconds 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def throughput(step, batch: int, seconds: float) -> float:
    for _ in range(3):  # warm-up: oneDNN picks its kernels on the first calls
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - start)


def measure(arch: str, arch_args: dict, channels_last: bool, train_batch: int, eval_batch: int,
            seconds: float) -> tuple[float, float]:  # fmt: skip
    from spurlab.models import build_classifier

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_classifier(arch, 10, 64, arch_args).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(train_batch, 3, 64, 64).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (train_batch,))

    def train_step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    xe = torch.rand(eval_batch, 3, 64, 64).contiguous(memory_format=fmt)

    def eval_step():
        with torch.no_grad():
            model.features(xe)

    model.train()
    train = throughput(train_step, train_batch, seconds)
    model.eval()
    return train, throughput(eval_step, eval_batch, seconds)


def main() -> None:
    from spurlab.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "config" / "config.yaml")
    train_batch, eval_batch = cfg["train"]["batch_size"], cfg["compute"]["eval_batch_size"]
    archs = {(m["arch"], tuple(sorted(m.get("arch_args", {}).items()))) for m in cfg["models"].values()}
    print(f"threads {args.threads}, train batch {train_batch}, eval batch {eval_batch} (img/s)")
    print(f"{'arch':<44} {'train':>8} {'train CL':>9} {'ratio':>6} {'eval':>8} {'eval CL':>8} {'ratio':>6}")
    for arch, arch_args in sorted(archs):
        plain = measure(arch, dict(arch_args), False, train_batch, eval_batch, args.seconds)
        cl = measure(arch, dict(arch_args), True, train_batch, eval_batch, args.seconds)
        name = f"{arch} {dict(arch_args)}"
        print(f"{name:<44} {plain[0]:8.0f} {cl[0]:9.0f} {cl[0] / plain[0]:6.2f} {plain[1]:8.0f} {cl[1]:8.0f} "
              f"{cl[1] / plain[1]:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
