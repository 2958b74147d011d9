"""BAM models (Yang & Kim 2019, sec. 3): f_o, f_s and the k-series, trained by the suite's loop.

f_o learns object labels and f_s scene labels on the same images X_os, so objects matter more to
f_o than to f_s by construction; f_kNNN learns scene labels on X_os^k, where the common object
(the paper's "dog") is in every image of a fraction k of the scene classes. All are trained with
`spurlab.train.fit` (seeded, resumable) from `bam.benchmark` (architecture, seed, overrides of the
top-level `train` keys). Deviation: the paper fine-tunes an ImageNet ResNet-50 on 100k images; here
small models train from scratch on the generated sets (no download).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SpurlabError
from . import bam_model_section, bam_models, model_sets


def train_bam_model(cfg: dict, name: str, train_set, val_set, out_dir, threads: int = 2, progress: bool = True) -> dict:
    """Train BAM model `name` on `train_set` (validated on `val_set`) into `out_dir`; return its meta."""
    from ..train import TrainSettings, train_on_sets

    if name not in bam_models(cfg):
        raise SpurlabError(f"BAM model '{name}': not defined by this config (defined: {', '.join(bam_models(cfg))})")
    _, _, label_column = model_sets(name)
    section = bam_model_section(cfg, name)
    b = cfg["bam"]["benchmark"]
    return train_on_sets(cfg, name, section=section, settings=TrainSettings.from_config(section["train"], None),
                         seed=section["seed"],
                         arch=b["arch"], arch_args=b["arch_args"], train_set=train_set, val_set=val_set, out_dir=out_dir,
                         threads=threads, progress=progress, label_column=label_column,
                         extra_meta={"label_column": label_column})  # fmt: skip


@torch.no_grad()
def predict(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted classes of uint8 (N, H, W, 3) images (CPU, eval mode)."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def labels_for(imageset, label_column: str | None) -> np.ndarray:
    """The labels a model of `label_column` is scored against on `imageset` (any BAM variant)."""
    col = label_column or ("scene_label" if imageset.attrs.get("label_kind") == "scene" else "object_label")
    return imageset.f[f"meta/{col}"][:].astype(np.int64)
