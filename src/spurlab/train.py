"""Training: ERM and L2-PGD adversarial training (docs/methods.md#models), seeded and resumable;
one entry point, `train_model`, for every trained model of the config (the suite, BAM's f_o / f_s
/ f_kNNN, Adebayo et al.'s normal and spurious models), by name.

- Every random draw of epoch e (shuffle, augmentation, PGD random start) comes from a generator
  seeded with (seed, e), and the learning rate is a function of the step: a run resumed from the
  checkpoint of epoch e continues exactly as the uninterrupted run would (bitwise on CPU).
- A checkpoint (weights, optimiser state, history) is written atomically after every epoch to
  `<out>/checkpoints/epoch_NNN.pt`; they stay after training (influence methods use them).
- Robust training (Madry et al.): each batch is replaced by its L2-PGD adversarial version,
  computed with the model in eval mode (BatchNorm running statistics, so the attack does not
  disturb them), eps given at 224x224 and scaled by sqrt(H*W)/224 (the value used is recorded).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import bam_model_section, bam_model_sets, model_family, model_section, posthoc_model_section
from .data.imagesets import class_names_for, open_imageset
from .device import autocast, pick_device, prepare_model
from .errors import SpurlabError
from .io import atomic_path, code_provenance, sha256_json


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: str  # sgd | adamw
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # cosine | constant
    warmup_epochs: float
    hflip: bool
    crop_padding: int
    robust: bool = False
    eps_224: float = 3.0
    pgd_steps: int = 3
    pgd_step_factor: float = 2.5  # step size = factor * eps / steps (Madry et al.'s rule)
    eval_pgd_steps: int = 10
    eval_adv_images: int = 500

    @classmethod
    def from_config(cls, train: dict, robust: dict | None) -> TrainSettings:
        aug = train["augmentation"]
        s = cls(
            epochs=train["epochs"],
            batch_size=train["batch_size"],
            optimizer=train["optimizer"],
            lr=train["lr"],
            momentum=train["momentum"],
            weight_decay=train["weight_decay"],
            schedule=train["schedule"],
            warmup_epochs=train["warmup_epochs"],
            hflip=aug["hflip"],
            crop_padding=aug["crop_padding"],
        )
        if robust is not None:
            s.robust = True
            s.eps_224 = robust["eps_224"]
            s.pgd_steps = robust["steps"]
            s.pgd_step_factor = robust["step_factor"]
            s.eval_pgd_steps = robust["eval_steps"]
            s.eval_adv_images = robust["eval_images"]
        return s


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def augment(x: torch.Tensor, gen: torch.Generator, hflip: bool, pad: int) -> torch.Tensor:
    """Random crop with reflect padding and horizontal flip, vectorised over the batch."""
    b, _, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        rows = (oy[:, None] + torch.arange(h)[None]).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * pad)
        xp = xp.gather(2, rows)
        cols = (ox[:, None] + torch.arange(w)[None]).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
        x = xp.gather(3, cols)
    if hflip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def lr_at(step: int, total: int, s: TrainSettings, steps_per_epoch: int) -> float:
    warm = int(s.warmup_epochs * steps_per_epoch)
    if step < warm:
        return s.lr * (step + 1) / warm
    if s.schedule == "constant":
        return s.lr
    t = (step - warm) / max(1, total - warm)
    return s.lr * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=s.momentum > 0
        )
    return torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return x_uint8.permute(0, 3, 1, 2).float().div_(255.0)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """On CUDA, batches go channels_last (as `device.prepare_model` puts the model)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def evaluate(model, source, device, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    for xb, yb in source.batches(torch.arange(len(source)), batch_size):
        with autocast(device):
            correct += (model(to_device(to_float(xb), device)).argmax(1).cpu() == yb).sum().item()
    return correct / max(1, len(source))


def adversarial_accuracy(model, source, device, s: TrainSettings, seed: int, batch_size: int = 256) -> float:
    from .models.robust import l2_pgd, scale_eps

    model.eval()
    n = min(len(source), s.eval_adv_images)
    eps = scale_eps(s.eps_224, source.image_size, source.image_size)
    gen = epoch_generator(seed, 10**6)
    correct = 0
    for xb, yb in source.batches(torch.arange(n), batch_size):
        xb, yb = to_float(xb).to(device), yb.to(device)
        adv = l2_pgd(model, xb, yb, eps=eps, step_size=s.pgd_step_factor * eps / s.eval_pgd_steps,
                     steps=s.eval_pgd_steps, random_start=True, generator=gen)  # fmt: skip
        with torch.no_grad():
            correct += (model(adv).argmax(1) == yb).sum().item()
    return correct / max(1, n)


def last_checkpoint(ckpt_dir: Path) -> tuple[int, Path | None]:
    done = sorted(ckpt_dir.glob("epoch_*.pt"))
    if not done:
        return 0, None
    return int(done[-1].stem.split("_")[1]), done[-1]


def _load_checkpoint(path: Path) -> dict:
    """weights_only: a checkpoint is data; one that is not (or is damaged) fails in one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe pickles
        raise SpurlabError(
            f"{path}: not a readable weights-only checkpoint ({type(e).__name__}); delete it to start over"
        ) from e


def _discard_stale(ckpt_dir: Path, fingerprint: str) -> None:
    """Checkpoints of another configuration or data must not be resumed: remove them."""
    _, path = last_checkpoint(ckpt_dir)
    if path is None:
        return
    if _load_checkpoint(path).get("fingerprint") != fingerprint:
        print(f"{ckpt_dir}: checkpoints were made from another config or data; starting over", flush=True)
        for old in ckpt_dir.glob("epoch_*.pt"):
            old.unlink()


def _resume(model, opt, ckpt_dir: Path, s: TrainSettings) -> tuple[int, list[dict]]:
    """Load the last checkpoint in `ckpt_dir` into model and optimizer: (its epoch, the history
    so far); (0, []) when there is none."""
    start, path = last_checkpoint(ckpt_dir)
    history: list[dict] = []
    if path is not None:
        state = _load_checkpoint(path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = state["history"]
        # the kill/resume tests and bench/kill_resume.py look for this line in the train log
        print(f"resuming from epoch {start} of {s.epochs} ({path})", flush=True)
    return start, history


def _train_epoch(model, opt, train, epoch: int, s: TrainSettings, *, seed: int, eps: float, device,
                 progress: bool) -> tuple[torch.Generator, float, int]:  # fmt: skip
    """One epoch of SGD (adversarial when s.robust) in the epoch's order, every random number drawn
    from the epoch's generator: (the generator, summed loss, correct predictions)."""
    from tqdm import tqdm

    from .models.robust import l2_pgd

    n = len(train)
    steps_per_epoch = math.ceil(n / s.batch_size)
    total = steps_per_epoch * s.epochs
    gen = epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=gen)
    loss_sum, correct = 0.0, 0
    model.train()
    batches = tqdm(train.batches(order, s.batch_size), total=steps_per_epoch, desc=f"epoch {epoch}/{s.epochs}",
                   disable=not progress, mininterval=5.0)  # fmt: skip
    for k, (xb, yb) in enumerate(batches):
        step = (epoch - 1) * steps_per_epoch + k
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, s, steps_per_epoch)
        xb = to_device(augment(to_float(xb), gen, s.hflip, s.crop_padding), device)
        yb = yb.to(device)
        if s.robust:
            model.eval()
            xb = l2_pgd(model, xb, yb, eps=eps, step_size=s.pgd_step_factor * eps / s.pgd_steps,
                        steps=s.pgd_steps, random_start=True, generator=gen)  # fmt: skip
            model.train()
        with autocast(device):  # bf16 on CUDA, nothing on CPU
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
    return gen, loss_sum, correct


def fit(
    model,
    train,
    val,
    s: TrainSettings,
    seed: int,
    ckpt_dir: Path,
    device: torch.device,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    fingerprint: str = "",
) -> list[dict]:
    """Train `model` in place; resume from the last checkpoint in `ckpt_dir` if there is one.

    `fingerprint` (a hash of the training config and data) is stored in every checkpoint;
    checkpoints with another fingerprint are discarded instead of resumed. `stop_after_epoch`
    ends the run after that epoch's checkpoint (used to test resumption). Returns the history.
    """
    from .models.robust import scale_eps

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _discard_stale(ckpt_dir, fingerprint)
    opt = make_optimizer(model, s)
    start, history = _resume(model, opt, ckpt_dir, s)
    if start and start >= s.epochs:
        return history
    n = len(train)
    eps = scale_eps(s.eps_224, train.image_size, train.image_size) if s.robust else 0.0
    for epoch in range(start + 1, s.epochs + 1):
        t0 = time.perf_counter()
        _, loss_sum, correct = _train_epoch(model, opt, train, epoch, s, seed=seed, eps=eps, device=device,
                                            progress=progress)  # fmt: skip
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / n,
            "train_acc": correct / n,
            "val_acc": evaluate(model, val, device),
            "seconds": time.perf_counter() - t0,
            "lr_end": opt.param_groups[0]["lr"],
        }
        if not math.isfinite(record["train_loss"]):
            raise SpurlabError(f"training diverged at epoch {epoch} (loss {record['train_loss']}); lower train.lr")
        history.append(record)
        with atomic_path(ckpt_dir / f"epoch_{epoch:03d}.pt") as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "history": history, "epoch": epoch,
                        "fingerprint": fingerprint}, tmp)  # fmt: skip
        if progress:
            print(
                f"epoch {epoch}: loss {record['train_loss']:.4f} train acc {record['train_acc']:.3f} "
                f"val acc {record['val_acc']:.3f} ({record['seconds']:.1f}s)",
                flush=True,
            )
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return history


class InMemoryBatches:
    """A packed image set held in memory as one uint8 tensor: the fastest source on a CPU."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.image_size = int(x.shape[1])

    @classmethod
    def from_imageset(cls, imageset, label_column: str | None = None) -> InMemoryBatches:
        x = torch.from_numpy(np.ascontiguousarray(imageset.images()))
        return cls(x, _labels(imageset, label_column))

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, order: torch.Tensor, batch_size: int):
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            yield self.x[idx], self.y[idx]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, imageset):
        self.imageset = imageset

    def __len__(self):
        return len(self.imageset)

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.imageset.images(int(i))))


class StreamingBatches:
    """Images decoded by DataLoader workers, in exactly the given order (index sets: real data
    too large for memory). Same batches as `InMemoryBatches` for the same order."""

    def __init__(self, imageset, workers: int, label_column: str | None = None):
        self.rows = _Rows(imageset)
        self.y = _labels(imageset, label_column)
        self.workers = workers
        self.image_size = imageset.image_size

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, order: torch.Tensor, batch_size: int):
        loader = torch.utils.data.DataLoader(self.rows, batch_size=batch_size, sampler=order.tolist(),
                                             num_workers=self.workers, persistent_workers=False)  # fmt: skip
        for k, x in zip(range(0, len(order), batch_size), loader):
            yield x, self.y[order[k : k + batch_size]]


def batch_source(imageset, workers: int, label_column: str | None = None):
    """In memory for packed sets, streamed by `workers` DataLoader processes for index sets."""
    if imageset.kind == "packed":
        return InMemoryBatches.from_imageset(imageset, label_column)
    return StreamingBatches(imageset, workers, label_column)


def _labels(imageset, label_column: str | None) -> torch.Tensor:
    y = imageset.f[f"meta/{label_column}"][:] if label_column else imageset.labels
    if (y < 0).any():
        raise SpurlabError(f"{imageset.path}: has images without a class label (label -1); it cannot be a training set")
    return torch.from_numpy(y.astype(np.int64))


def fit_and_save(model, name: str, section: dict, settings: TrainSettings, seed: int, tr, va, train, val, out_dir,
                 device, class_names: list[str], progress: bool = True, extra_meta: dict | None = None,
                 extra_metrics=None) -> dict:  # fmt: skip
    """Train `model` with `fit` (resuming from `out_dir/checkpoints` when config section, data,
    device, warm-start file and code hash match) and save `model.safetensors` + `meta.json` (the training
    record); return the meta. `tr`/`va`: the image sets, `train`/`val`: their batch sources;
    `extra_metrics(model)` adds to the final metrics (the robust model's adversarial accuracy)."""
    from .models import save_model

    t = time.perf_counter()
    # the code too: a code change reruns training (spurlab.io.code), which must not resume old epochs
    made_from = {"section": section, "train": tr.sha256, "val": va.sha256, "device": device.type,
                 "code": code_provenance()["code_sha256"]}  # fmt: skip
    if (extra_meta or {}).get("init_checkpoint"):
        made_from["init"] = extra_meta["init_checkpoint"]["sha256"]
    fingerprint = sha256_json(made_from)
    history = fit(model, train, val=val, s=settings, seed=seed, ckpt_dir=Path(out_dir) / "checkpoints", device=device,
                  progress=progress,
                  fingerprint=fingerprint)  # fmt: skip
    metrics = {"val_acc": history[-1]["val_acc"], "train_acc": history[-1]["train_acc"]}
    metrics.update(extra_metrics(model) if extra_metrics else {})
    meta = {
        "name": name,
        "class_names": class_names,
        **(extra_meta or {}),
        "robust": settings.robust,
        "training": section,
        "data": {
            "train_set": str(tr.path),
            "train_sha256": tr.sha256,
            "val_set": str(va.path),
            "val_sha256": va.sha256,
        },
        "history": history,
        "metrics": metrics,
        "train_seconds": round(sum(h["seconds"] for h in history), 2),
        "wall_seconds": round(time.perf_counter() - t, 2),
    }
    save_model(model.cpu().float(), out_dir, meta)
    return meta


@contextlib.contextmanager
def removed_on_error(out_dir):
    """What a trainer creates under `out_dir` (the directory itself and missing parents,
    checkpoints/, its epoch files, the model files) is removed again when it fails with an error:
    a failed job leaves nothing behind. What was there before stays (the checkpoints a resumed run
    started from). A run stopped by a signal (SIGKILL, SIGTERM, Ctrl-C) keeps its checkpoints to
    resume from."""
    out_dir = Path(out_dir)
    top = out_dir  # the highest directory this run creates, if any
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    before = set(out_dir.rglob("*")) if out_dir.is_dir() else set()
    existed = top.exists()
    try:
        yield
    except Exception:
        if out_dir.is_dir():
            for path in sorted(out_dir.rglob("*"), reverse=True):  # children before their directory
                if path in before:
                    continue
                if path.is_dir() and not path.is_symlink():
                    with contextlib.suppress(OSError):
                        path.rmdir()
                else:
                    path.unlink(missing_ok=True)
        if not existed:
            for d in [out_dir, *out_dir.parents]:
                with contextlib.suppress(OSError):
                    d.rmdir()  # only empty directories go
                if d == top:
                    break
        raise


def train_on_sets(cfg: dict, name: str, section: dict, settings: TrainSettings, seed: int, arch: str, arch_args,
                  train_set, val_set, out_dir, threads: int = 2, progress: bool = True, label_column: str | None = None,
                  extra_meta: dict | None = None, extra_metrics=None, init_checkpoint=None) -> dict:  # fmt: skip
    """What `train_model` does around `fit_and_save` for every family (suite, BAM, posthoc): threads and device, the
    train and validation image sets (same classes, labels from `label_column` or the sets' own),
    their batch sources, and the model `arch` seeded by `seed`, warm-started from the local file
    `init_checkpoint` if given (`init_from_checkpoint`; its path and sha256 go into the meta).
    `extra_metrics(model, val, device, image_size)` adds to the final metrics. Returns the meta."""
    from .models import build_classifier
    from .models.checkpoints import init_from_checkpoint

    torch.set_num_threads(threads)
    device = pick_device(cfg["compute"]["device"])
    with removed_on_error(out_dir), open_imageset(train_set) as tr, open_imageset(val_set) as va:
        names = class_names_for(tr, label_column)
        if names != class_names_for(va, label_column):
            raise SpurlabError(f"{val_set}: classes differ from the training set {train_set}")
        train = batch_source(tr, cfg["compute"]["workers"], label_column)
        val = batch_source(va, cfg["compute"]["workers"], label_column)
        torch.manual_seed(seed)
        model = build_classifier(arch, len(names), tr.image_size, arch_args)
        if init_checkpoint:
            extra_meta = {**(extra_meta or {}), "init_checkpoint": init_from_checkpoint(model, init_checkpoint)}
        model = prepare_model(model, device)
        metrics = None if extra_metrics is None else (lambda m: extra_metrics(m, val, device, tr.image_size))
        return fit_and_save(model, name, section=section, settings=settings, seed=seed, tr=tr, va=va, train=train, val=val,
                            out_dir=Path(out_dir), device=device, class_names=names,
                            progress=progress, extra_meta=extra_meta, extra_metrics=metrics)  # fmt: skip


def training_plan(cfg: dict, name: str) -> dict:
    """The keyword arguments of `train_on_sets` for trained model `name` of any family
    (`spurlab.config.model_family`): the suite's `models.<name>` (seed, architecture, `robust`,
    `init_checkpoint`), BAM's f_o / f_s / f_kNNN from `bam.benchmark` (scene labels for f_s), and
    Adebayo et al.'s normal / spurious_<signal> from `posthoc`; each overrides the top-level `train`
    keys."""
    family = model_family(cfg, name)
    if family == "suite":
        section = model_section(cfg, name)
        entry = section["model"]
        return {"section": section, "settings": TrainSettings.from_config(section["train"], entry.get("robust")),
                "seed": entry["seed"], "arch": entry["arch"], "arch_args": entry.get("arch_args"),
                "init_checkpoint": entry.get("init_checkpoint")}  # fmt: skip
    section = bam_model_section(cfg, name) if family == "bam" else posthoc_model_section(cfg, name)
    plan = {"section": section, "settings": TrainSettings.from_config(section["train"], None), "seed": section["seed"],
            "arch": section["model"]["arch"], "arch_args": section["model"]["arch_args"]}  # fmt: skip
    if family == "bam":  # f_s learns the scene labels of the object sets
        label_column = bam_model_sets(name)[2]
        plan.update(label_column=label_column, extra_meta={"label_column": label_column})
    return plan


def train_model(cfg: dict, name: str, train_set, val_set, out_dir, threads: int = 2, progress: bool = True) -> dict:
    """The `train` stage, for every model of every family (`training_plan`): build model `name` of
    the config, train it on `train_set` (resuming from `out_dir/checkpoints`), save
    `model.safetensors` + `meta.json`; return the meta. A robust model's final metrics add its
    adversarial accuracy on `val_set` and the eps it was trained at."""
    from .models.robust import scale_eps

    plan = training_plan(cfg, name)
    settings = plan["settings"]

    def robust_metrics(model, val, device, image_size) -> dict:
        return {"val_adv_acc": adversarial_accuracy(model, val, device, settings, plan["seed"]),
                "eps": scale_eps(settings.eps_224, image_size, image_size)}  # fmt: skip

    return train_on_sets(cfg, name, **plan, train_set=train_set, val_set=val_set, out_dir=out_dir, threads=threads,
                         progress=progress, extra_metrics=robust_metrics if settings.robust else None)  # fmt: skip
