"""Adebayo et al. 2022, "Post hoc explanations may be ineffective for detecting unknown spurious
correlation" (ICLR; docs/methods.md#spurious-contamination, #attribution-methods,
#post-hoc-explanation-measures): a normal model and one spurious model per contamination
signal, Adebayo's spurious score and model conditions (`spurious_score`), feature-attribution
measures K-SSD / CCM / FAM / FAM-GT by SSIM (`attribution_similarity`), TCAV concept tests
(`tcav_tests`), TracIn training-point ranking and ICM (`influence`), the blinded study kit and its
analysis (`study`), and the `posthoc` target's summary and tables (`summary`).

This module is imported by the Snakefile at parse time: pure Python, no heavy imports.
"""

from __future__ import annotations

from ..config import merge
from ..errors import SpurlabError

NORMAL = "normal"


def signals(cfg: dict) -> list[str]:
    """The contamination signals (docs/methods.md#spurious-contamination), in config order: tag, stripe, blur by default."""
    return list(cfg["contamination"]["signals"])


def spurious_model(signal: str) -> str:
    return f"spurious_{signal}"


def posthoc_models(cfg: dict) -> list[str]:
    """`normal` (clean data) and `spurious_<signal>` per signal (signal on every aligned-class
    training image). The section's cross-key rules are `spurlab.config.check_semantics`'."""
    return [NORMAL] + [spurious_model(s) for s in signals(cfg)]


def model_sets(cfg: dict, name: str) -> tuple[str, str]:
    """(training set, validation set) of a posthoc model; every model is validated on clean test images."""
    if name == NORMAL:
        return "contam_clean_train", "contam_clean_test"
    for s in signals(cfg):
        if name == spurious_model(s):
            return f"contam_{s}_train", "contam_clean_test"
    raise SpurlabError(f"posthoc model '{name}': expected normal or spurious_<signal> ({', '.join(signals(cfg))})")


def posthoc_model_section(cfg: dict, name: str) -> dict:
    """What a posthoc model is made from (rule params, checkpoint fingerprint, meta record)."""
    p = cfg["posthoc"]
    return {"seed": p["seed"], "model": {"arch": p["arch"], "arch_args": p["arch_args"]},
            "train": merge(cfg["train"], p["train"]), "name": name, "sets": list(model_sets(cfg, name))}  # fmt: skip


def test_sets(cfg: dict) -> list[str]:
    """contam_clean_test and its row-for-row twins with each signal."""
    return ["contam_clean_test"] + [f"contam_{s}_test" for s in signals(cfg)]
