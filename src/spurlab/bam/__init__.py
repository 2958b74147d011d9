"""BAM (Yang & Kim 2019, "Benchmarking Attribution Methods with Relative Feature Importance"):
models with known relative feature importance, their verification, attribution region means,
the metrics MCS / IDR / IIR, TCAV, and the `bam` target's summary (docs/methods.md#bam-compositing, #attribution-methods, #bam-metrics).

This module is imported by the Snakefile at parse time: pure Python, no heavy imports.
"""

from __future__ import annotations

from ..config import merge
from ..errors import SpurlabError


def k_code(k: float) -> str:
    """0.3 -> 'k030': the suffix of the commonality sets and models."""
    return f"k{round(float(k) * 100):03d}"


def kseries_codes(cfg: dict) -> list[str]:
    """The commonality codes of the k-series, ascending; 1.0 (the reference) must be among them."""
    codes = [k_code(k) for k in sorted(cfg["bam"]["commonality"])]
    if "k100" not in codes:
        raise SpurlabError("config key bam.commonality: must include 1.0, the reference of the k-series MCS (docs/methods.md#bam-metrics)")
    return codes


def bam_models(cfg: dict) -> list[str]:
    """f_o (object labels on X_os), f_s (scene labels on X_os), f_kNNN (scene labels on X_os^k)."""
    return ["f_o", "f_s"] + [f"f_{c}" for c in kseries_codes(cfg)]


def model_sets(name: str) -> tuple[str, str, str | None]:
    """(train set, validation set, label column or None for the set's own labels) of a BAM model."""
    if name == "f_o":
        return "bam_os_train", "bam_os_test", None
    if name == "f_s":
        return "bam_os_train", "bam_os_test", "scene_label"
    if name.startswith("f_k"):
        code = name[2:]
        return f"bam_{code}_train", f"bam_{code}_test", None
    raise SpurlabError(f"BAM model '{name}': expected f_o, f_s or f_kNNN")


def bam_model_section(cfg: dict, name: str) -> dict:
    """What a BAM model is made from (rule params, checkpoint fingerprint, meta record)."""
    b = cfg["bam"]["benchmark"]
    train = merge(cfg["train"], b["train"])
    if name == "f_o":  # shapes take longer to learn than scenes
        train = merge(train, b["train_object"])
    return {"seed": b["seed"], "model": {"arch": b["arch"], "arch_args": b["arch_args"]},
            "train": train, "name": name, "sets": list(model_sets(name))}  # fmt: skip


def attribution_parts(cfg: dict) -> list[str]:
    """The jobs of rule bam_attributions: `contrast` (f_o vs f_s, and f_s without objects for
    IDR), one per k-series model, and `iir`."""
    return ["contrast"] + kseries_codes(cfg) + ["iir"]


def part_inputs(cfg: dict, part: str) -> dict:
    """{'models': [...], 'sets': [...]} that one attribution part reads."""
    if part == "contrast":
        return {"models": ["f_o", "f_s"], "sets": ["bam_os_test", "bam_0s_test"]}
    if part == "iir":
        return {"models": ["f_s"], "sets": ["bam_os_test", "bam_0s_test"]}
    if part in kseries_codes(cfg):
        return {"models": [f"f_{part}"], "sets": [f"bam_{part}_test"]}
    raise SpurlabError(f"BAM attribution part '{part}': expected contrast, iir or one of {', '.join(kseries_codes(cfg))}")


def model_dirs_arg(models: list[str]) -> str:
    """The --model-dirs argument of the BAM rules: results/bam/models/<m> per model."""
    return " ".join(f"results/bam/models/{m}" for m in models)


def set_paths(names: list[str]) -> list[str]:
    """Image set files of the given set names (rule inputs)."""
    return [f"results/datasets/{s}.h5" for s in names]
