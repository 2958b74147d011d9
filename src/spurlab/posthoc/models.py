"""Normal and spurious models of Adebayo et al. 2022 (sec. 2.1), trained by the suite's loop.

`normal` learns the classes on clean images; `spurious_<signal>` on the same images with the signal
on every image of the aligned class (SPEC 1.3), so the signal is as predictive as the shape. Both
are trained with `spurlab.train.fit` (seeded, resumable) from `posthoc` (architecture, seed,
overrides of the top-level `train` keys). Every epoch's checkpoint stays in `<out>/checkpoints`:
TracIn (`spurlab.posthoc.influence`) sums over them. Deviation: the paper fine-tunes on radiographs
and dog photos; here small CNNs train from scratch on generated images (no download).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import posthoc_model_section, posthoc_models


def train_posthoc_model(cfg: dict, name: str, train_set, val_set, out_dir, threads: int = 2, progress: bool = True) -> dict:
    """Train posthoc model `name` on `train_set` (validated on `val_set`) into `out_dir`; return its meta."""
    from ..data.imagesets import open_imageset
    from ..device import pick_device, prepare_model
    from ..errors import SpurlabError
    from ..models import build_classifier
    from ..train import TrainSettings, batch_source, fit_and_save

    if name not in posthoc_models(cfg):
        raise SpurlabError(f"posthoc model '{name}': not defined by this config (defined: {', '.join(posthoc_models(cfg))})")
    section = posthoc_model_section(cfg, name)
    settings = TrainSettings.from_config(section["train"], None)
    out_dir = Path(out_dir)
    torch.set_num_threads(threads)
    device = pick_device(cfg["compute"]["device"])
    with open_imageset(train_set) as tr, open_imageset(val_set) as va:
        if tr.class_names != va.class_names:
            raise SpurlabError(f"{val_set}: classes differ from the training set {train_set}")
        train, val = batch_source(tr, cfg["compute"]["workers"]), batch_source(va, cfg["compute"]["workers"])
        torch.manual_seed(section["seed"])
        p = cfg["posthoc"]
        model = prepare_model(build_classifier(p["arch"], len(tr.class_names), tr.image_size, p["arch_args"]), device)
        return fit_and_save(model, name, section, settings, section["seed"], tr, va, train, val, out_dir, device,
                            tr.class_names, progress)  # fmt: skip
