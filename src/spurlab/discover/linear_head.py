"""Lightweight discovery on new data (Moayeri et al. 2023, sec. 3.2; docs/methods.md#lightweight-discovery).

Robust neural features transfer: to find a new task's spurious features, fit only a linear head on
the frozen robust model's penultimate features of the new task's training images, then run the
discovery pipeline (importance, D(i, j) with activation maps, annotation) on the robust backbone
with that head. Paper: Adam, lr 0.1, weight decay 0.003, 20 epochs; reference code: SGD, lr 0.01
(both selectable). Everything runs on cached features, so the fit takes seconds.

The result is an ordinary model directory (the backbone's weights, the new head, the new class
names) that every stage reads like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..errors import SpurlabError


@dataclass
class HeadSettings(Settings):
    """Stage `lightweight_head` (config `lightweight.head`, and the seed `lightweight.seed`)."""

    SECTION = "lightweight.head"
    KEYS = {"seed": "lightweight.seed"}
    optimizer: str = "adam"  # paper; "sgd" for the reference code (lr 0.01, momentum 0.9)
    lr: float = 0.1  # paper
    weight_decay: float = 0.003  # paper
    epochs: int = 20  # paper
    batch_size: int = 256
    seed: int = 0

    def as_dict(self) -> dict:
        """The head's settings as meta.json records them (the seed is recorded beside them)."""
        return {k: v for k, v in vars(self).items() if k != "seed"}


def fit_linear_head(features: np.ndarray, labels: np.ndarray, num_classes: int, settings: HeadSettings,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:  # fmt: skip
    """(W (C, D), b (C,), per-epoch history) of a softmax regression on frozen features.

    Zero-initialised and shuffled by a seeded generator: the same inputs give the same bytes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    head = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    if settings.optimizer == "adam":
        opt = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    elif settings.optimizer == "sgd":
        opt = torch.optim.SGD(head.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    else:
        raise ValueError(f"head optimizer must be adam or sgd, not {settings.optimizer!r}")
    history = []
    for epoch in range(settings.epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for s in range(0, len(x), settings.batch_size):
            idx = order[s : s + settings.batch_size]
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            acc = float((head(x).argmax(1) == y).float().mean())
        history.append({"epoch": epoch + 1, "loss": total / len(x), "train_acc": acc})
    return head.weight.detach().clone(), head.bias.detach().clone(), history


def run_fit_head(model_dir, train_features, test_features, out_dir, settings: HeadSettings) -> dict:
    """Stage `lightweight_head`: `out_dir` holds the backbone of `model_dir` with a head fit on the
    new task's cached features (`train_features`); test accuracy from `test_features`."""
    from ..models.factory import load_model, save_model

    base, base_meta = load_model(model_dir)
    with (
        open_features(train_features, model_dir=model_dir) as tr,
        open_features(test_features, model_dir=model_dir) as te,
    ):
        names = tr.class_names
        if te.class_names != names:
            raise SpurlabError(f"{test_features}: classes {te.class_names} differ from {train_features}'s {names}")
        x, y = tr["features"], tr["labels"]
        xt, yt = te["features"], te["labels"]
        sets = {"train": tr.attrs["imageset_sha256"], "test": te.attrs["imageset_sha256"]}
    if (y < 0).any():
        raise SpurlabError(f"{train_features}: unlabelled rows; the head needs a labelled training set")
    seed = settings.seed
    W, b, history = fit_linear_head(x, y, len(names), settings, seed)
    test_acc = float(((torch.from_numpy(xt.astype(np.float32)) @ W.T + b).argmax(1).numpy() == yt).mean())
    base.net.reset_classifier(len(names))
    fc = base.net.get_classifier()
    with torch.no_grad():
        fc.weight.copy_(W)
        fc.bias.copy_(b)
    meta = {
        "name": f"{base_meta.get('name', 'model')}_lightweight",
        "class_names": names,
        "robust": bool(base_meta.get("robust")),
        "lightweight": {
            "backbone": str(model_dir), "backbone_sha256": model_checkpoint_sha256(model_dir),
            "imageset_sha256": sets, "settings": settings.as_dict(), "seed": seed, "history": history,
        },
        "metrics": {"train_acc": history[-1]["train_acc"], "test_acc": test_acc},
    }  # fmt: skip
    save_model(base, out_dir, meta)
    return {"classes": len(names), "train_acc": history[-1]["train_acc"], "test_acc": test_acc}
