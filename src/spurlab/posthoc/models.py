"""Normal and spurious models of Adebayo et al. 2022 (sec. 2.1), trained by the suite's loop.

`normal` learns the classes on clean images; `spurious_<signal>` on the same images with the signal
on every image of the aligned class (docs/methods.md#spurious-contamination), so the signal is as predictive as the shape. Both
are trained with `spurlab.train.fit` (seeded, resumable) from `posthoc` (architecture, seed,
overrides of the top-level `train` keys). Every epoch's checkpoint stays in `<out>/checkpoints`:
TracIn (`spurlab.posthoc.influence`) sums over them. Deviation: the paper fine-tunes on radiographs
and dog photos; here small CNNs train from scratch on generated images (no download).
"""

from __future__ import annotations

from ..errors import SpurlabError
from . import posthoc_model_section, posthoc_models


def train_posthoc_model(
    cfg: dict, name: str, train_set, val_set, out_dir, threads: int = 2, progress: bool = True
) -> dict:
    """Train posthoc model `name` on `train_set` (validated on `val_set`) into `out_dir`; return its meta."""
    from ..train import TrainSettings, train_on_sets

    if name not in posthoc_models(cfg):
        raise SpurlabError(
            f"posthoc model '{name}': not defined by this config (defined: {', '.join(posthoc_models(cfg))})"
        )
    section = posthoc_model_section(cfg, name)
    p = cfg["posthoc"]
    return train_on_sets(cfg, name, section=section, settings=TrainSettings.from_config(section["train"], None),
                         seed=section["seed"],
                         arch=p["arch"], arch_args=p["arch_args"], train_set=train_set, val_set=val_set, out_dir=out_dir,
                         threads=threads, progress=progress)  # fmt: skip
