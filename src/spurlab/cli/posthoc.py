"""The `spurlab posthoc-*` subcommands (rules/posthoc.smk, Adebayo et al. 2022; their modules are in
`spurlab.measure`): one per rule but training (`spurlab train`), plus the study analysis for
collected responses. Every stage reads several config
sections: its settings are the config."""

from __future__ import annotations

import argparse

from .args import finite_float, named
from .table import CONFIG, QUIET, Command, arg, path, text, threads

MODELS = "--models/--model-dirs"
SETS = "--set-names/--imagesets"


def scores(cfg: dict, a) -> int:
    from ..measure.signal_flip_score import run_scores

    df = run_scores(cfg, named(a.models, a.model_dirs, MODELS), named(a.set_names, a.imagesets, SETS), a.out)
    print(f"{a.out}: {len(df)} spurious scores")
    return 0


def attributions(cfg: dict, a) -> int:
    from ..measure.attribution_similarity import run_signal

    info = run_signal(cfg, a.signal, model_dirs=named(a.models, a.model_dirs, MODELS),
                      sets=named(a.set_names, a.imagesets, SETS), out=a.out, figure=a.figure, threads=a.threads,
                      progress=not a.quiet, svg=a.svg)  # fmt: skip
    print(f"{a.out}: {info}")
    return 0


def tcav(cfg: dict, a) -> int:
    from ..measure.tcav_tests import run_tcav

    df = run_tcav(cfg, named(a.models, a.model_dirs, MODELS), named(a.set_names, a.imagesets, SETS), a.out,
                  a.cache_dir, threads=a.threads, progress=not a.quiet)  # fmt: skip
    print(f"{a.out}: {len(df)} TCAV rows")
    return 0


def influence(cfg: dict, a) -> int:
    from ..measure.influence import run_influence

    df = run_influence(cfg, named(a.models, a.model_dirs, MODELS), named(a.set_names, a.imagesets, SETS), a.out,
                       threads=a.threads, progress=not a.quiet)  # fmt: skip
    print(f"{a.out}: {len(df)} ICM rows")
    return 0


def study(cfg: dict, a) -> int:
    from ..measure.explanation_study import build_study

    info = build_study(cfg, named(a.models, a.model_dirs, MODELS), sets=named(a.set_names, a.imagesets, SETS),
                       tcav=a.tcav, influence=a.influence, out_dir=a.out_dir)  # fmt: skip
    print(f"{a.out_dir}: {info}")
    return 0


def study_analyse(_, a) -> int:
    from ..measure.explanation_study import analyse_responses_file

    res = analyse_responses_file(a.responses, a.out, alpha=a.alpha)
    print(f"{a.out}: {len(res['conditions'])} group x model conditions analysed")
    return 0


def summary(cfg: dict, a) -> int:
    from ..measure.posthoc_summary import run_summary

    s = run_summary(cfg, a.scores, attributions=named(a.signals, a.attributions, "--signals/--attributions"),
                    tcav=a.tcav, influence=a.influence, study_analysis=a.study_analysis, out=a.out,
                    tables_dir=a.tables_dir)  # fmt: skip
    print(f"{a.out}: conditions {s['conditions']}")
    return 0


def significance(value: str) -> float:
    """argparse `type=` of --alpha: a finite number in (0, 1)."""
    number = finite_float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1)")
    return number


IO = (  # the models and image sets a posthoc stage reads
    text("--models", "posthoc model names (normal, spurious_<signal>)", many=True),
    path("--model-dirs", "one directory per model", many=True),
    text("--set-names", "image set names", many=True),
    path("--imagesets", "one file per set name", many=True),
)
COMPUTE = (threads(), QUIET)

COMMANDS = (
    Command("posthoc-scores", "measure",
            "Adebayo spurious score of every model, signal and class (rule posthoc_scores)", scores, (
        *IO,
        path("--out", "table (.parquet, with a .csv twin)"),
    ), settings=CONFIG),
    Command("posthoc-attributions", "measure",
            "K-SSD, CCM, FAM, FAM-GT per image and method for one signal (rule posthoc_attributions)", attributions, (
        *IO,
        text("--signal"),
        path("--out"),
        path("--figure", "attribution panels (PNG)"),
        path("--svg", "the same panels as SVG", required=False),
        *COMPUTE,
    ), settings=CONFIG),
    Command("posthoc-tcav", "measure",
            "TCAV scores of signal and core concepts for every posthoc model (rule posthoc_tcav)", tcav, (
        *IO,
        path("--out"),
        path("--cache-dir", "captum CAV cache (keyed by checkpoint hash)"),
        *COMPUTE,
    ), settings=CONFIG),
    Command("posthoc-influence", "measure", "TracInCPFast proponents and ICM per test image (rule posthoc_influence)",
            influence, (*IO, path("--out"), *COMPUTE), settings=CONFIG),
    Command("posthoc-study", "measure",
            "blinded study kit: stimuli, assignment, questionnaires, simulated check (rule posthoc_study)", study, (
        *IO,
        path("--tcav"),
        path("--influence"),
        path("--out-dir"),
    ), settings=CONFIG),
    Command("posthoc-study-analyse", "measure",
            "analyse collected study responses: difference vs control, ANOVA, Tukey-Kramer", study_analyse, (
        path("--responses", "CSV: participant, group, condition, method, likert[, rationale]"),
        path("--out", "JSON result (a .csv table beside it)"),
        arg("--alpha", type=significance, default=0.05, help="significance level, in (0, 1)"),
    )),
    Command("posthoc-summary", "measure", "results/posthoc/summary.json and Tables 1-3 (rule posthoc_summary)", summary, (
        path("--scores"),
        text("--signals", many=True),
        path("--attributions", "one table per signal", many=True),
        path("--tcav"),
        path("--influence"),
        path("--study-analysis"),
        path("--out"),
        path("--tables-dir"),
    ), settings=CONFIG),
)  # fmt: skip
