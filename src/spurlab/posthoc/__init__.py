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
    training image); checks the section's cross-key rules first (a bad config fails at parse time)."""
    check_posthoc(cfg)
    return [NORMAL] + [spurious_model(s) for s in signals(cfg)]


def check_posthoc(cfg: dict) -> None:
    p = cfg["posthoc"]
    if not p["enabled"]:
        return
    if not cfg["contamination"]["enabled"]:
        raise SpurlabError("config key posthoc.enabled: needs contamination.enabled (its image sets)")
    if p["study"]["signal"] not in cfg["contamination"]["signals"]:
        raise SpurlabError(f"config key posthoc.study.signal: '{p['study']['signal']}' is not in contamination.signals")
    for key, known in (("shapes", cfg["datasets"]["classes"]), ("scenes", cfg["datasets"]["scenes"])):
        for i, name in enumerate(p["tcav"][key]):
            if name not in known:
                raise SpurlabError(f"config key posthoc.tcav.{key}[{i}]: '{name}' is not in datasets.{'classes' if key == 'shapes' else 'scenes'}")


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


def model_dirs_arg(models: list[str]) -> str:
    return " ".join(f"results/posthoc/models/{m}" for m in models)


def set_paths(names: list[str]) -> list[str]:
    return [f"results/datasets/{s}.h5" for s in names]
