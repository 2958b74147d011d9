"""BAM (Yang & Kim 2019, "Benchmarking Attribution Methods with Relative Feature Importance"):
models with known relative feature importance, their verification, attribution region means,
the metrics MCS / IDR / IIR, TCAV, and the `bam` target's summary (docs/methods.md#bam-compositing, #attribution-methods, #bam-metrics).

This module is imported by the Snakefile at parse time: pure Python, no heavy imports.
"""

from __future__ import annotations

from ..config import k_code, merge
from ..errors import SpurlabError


def kseries_codes(cfg: dict) -> list[str]:
    """The commonality codes of the k-series, ascending (`spurlab.config.check_semantics` has
    checked that 1.0, the reference, is among them)."""
    return [k_code(k) for k in sorted(cfg["bam"]["commonality"])]


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
    raise SpurlabError(
        f"BAM attribution part '{part}': expected contrast, iir or one of {', '.join(kseries_codes(cfg))}"
    )
