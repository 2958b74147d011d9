"""BAM (Yang & Kim 2019, rules/bam.smk): the verification table, attributions per part, TCAV, the
summary (the models are trained by `spurlab train`). Every stage reads several config sections: its settings are the config."""

from __future__ import annotations

from .args import aligned, check_model_dirs
from .table import CONFIG, QUIET, Command, arg, path, text, threads

TABLE = "table (.parquet; a .csv twin is written)"


def _named(a, names_attr: str, paths_attr: str) -> dict:
    """--names a b --paths x y -> {a: x, b: y} (one path per name; model directories must hold
    the models they are named as)."""
    aligned(a, (names_attr, paths_attr))
    if paths_attr == "model_dirs":
        check_model_dirs(getattr(a, names_attr), getattr(a, paths_attr), f"--{names_attr.replace('_', '-')}")
    return dict(zip(getattr(a, names_attr), map(str, getattr(a, paths_attr))))


def bam_verify(cfg: dict, a) -> int:
    from ..measure.bam_verification import accuracy_drops, run_verification

    df = run_verification(cfg, _named(a, "models", "model_dirs"), _named(a, "set_names", "imagesets"), a.out)
    acc = df[df["rows"] == "all"].set_index(["model", "set"])["accuracy"]
    drops = ", ".join(f"k={k:g}: {v:+.3f}" for k, v in accuracy_drops(df).items())
    print(f"{a.out}: f_o on os/0s/og {acc['f_o'].round(3).tolist()}, f_s {acc['f_s'].round(3).tolist()}; drops {drops}")
    return 0


def bam_attributions(cfg: dict, a) -> int:
    import torch

    from ..measure.bam_attributions import run_part

    torch.set_num_threads(a.threads)
    info = run_part(cfg, a.part, _named(a, "models", "model_dirs"), _named(a, "set_names", "imagesets"), a.out,
                    progress=not a.quiet)  # fmt: skip
    print(f"{a.out}: {info}")
    return 0


def bam_tcav(cfg: dict, a) -> int:
    import torch

    from ..measure.bam_tcav import run_tcav

    torch.set_num_threads(a.threads)
    df = run_tcav(cfg, _named(a, "models", "model_dirs"), _named(a, "set_names", "imagesets"), a.out, a.cache_dir,
                  progress=not a.quiet)  # fmt: skip
    comb = df[df["layer"] == "combined"].set_index("model")["score"].round(3).to_dict()
    print(f"{a.out}: TCAV scores {comb}")
    return 0


def bam_summary(cfg: dict, a) -> int:
    from ..measure.bam_summary import run_bam_summary

    s = run_bam_summary(cfg, a.verification, contrast=a.contrast, kseries=_named(a, "kseries_codes", "kseries"),
                        iir_table=a.iir, tcav=a.tcav, out=a.out, figure=a.figure)  # fmt: skip
    mcs = {m: e["mcs"] for m, e in s["methods"].items()}
    print(f"{a.out}: MCS {mcs}, TCAV {s['tcav_mcs']}")
    return 0


IO = (  # the models and image sets a BAM stage reads
    text("--models", "BAM model names", many=True),
    path("--model-dirs", "one directory per model", many=True),
    text("--set-names", "image set names", many=True),
    path("--imagesets", "one file per set name", many=True),
)

COMMANDS = (
    Command("bam-verify", "measure",
            "BAM verification table: accuracies on X_os/X_0s/X_og, k-series drops (rule bam_verify)", bam_verify, (
        *IO,
        path("--out", TABLE),
    ), settings=CONFIG),
    Command("bam-attributions", "measure",
            "region means g_c of every attribution method for one BAM part (rule bam_attributions)", bam_attributions, (
        text("--part", "contrast, iir or kNNN"),
        *IO,
        path("--out", TABLE),
        threads(),
        QUIET,
    ), settings=CONFIG),
    Command("bam-tcav", "measure", "TCAV scores of the common-object concept for every BAM model (rule bam_tcav)",
            bam_tcav, (
        *IO,
        path("--out", TABLE),
        path("--cache-dir", "captum's CAV cache (keyed by model hash)"),
        threads(),
        arg("--quiet", action="store_true", help="no progress messages"),
    ), settings=CONFIG),
    Command("bam-summary", "measure", "write results/bam/summary.json and its figure (rule bam_summary)", bam_summary, (
        path("--verification"),
        path("--contrast"),
        text("--kseries-codes", "kNNN codes, one per --kseries table", many=True),
        path("--kseries", many=True),
        path("--iir"),
        path("--tcav"),
        path("--out"),
        path("--figure", "PNG: MCS bars and k-series curves"),
    ), settings=CONFIG),
)  # fmt: skip
