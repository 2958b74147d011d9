"""The `spurlab posthoc-*` subcommands (rules/posthoc.smk, Adebayo et al. 2022: `spurlab.posthoc`):
one per rule, plus the study analysis for collected responses. Registered by `spurlab.cli.build_parser`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SpurlabError
from .args import check_model_dirs, finite_float


def _named(names, paths, what: str) -> dict:
    if len(names) != len(paths):
        raise SpurlabError(f"{what}: {len(names)} names but {len(paths)} paths")
    if what == "--models/--model-dirs":  # each directory must hold the model it is named as
        check_model_dirs(names, paths, "--models")
    return dict(zip(names, map(str, paths)))


def cmd_train(args) -> int:
    from ..config import load_config
    from ..posthoc.models import train_posthoc_model

    meta = train_posthoc_model(load_config(args.config), args.model, train_set=args.train_set, val_set=args.val_set,
                               out_dir=args.out_dir, threads=args.threads,
                               progress=not args.quiet)  # fmt: skip
    print(f"{args.out_dir}: posthoc model {args.model} val acc {meta['metrics']['val_acc']:.3f}")
    return 0


def cmd_scores(args) -> int:
    from ..config import load_config
    from ..posthoc.spurious_score import run_scores

    df = run_scores(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs"),
                    _named(args.set_names, args.imagesets, "--set-names/--imagesets"), args.out)  # fmt: skip
    print(f"{args.out}: {len(df)} spurious scores")
    return 0


def cmd_attributions(args) -> int:
    from ..config import load_config
    from ..posthoc.attribution_similarity import run_signal

    info = run_signal(load_config(args.config), args.signal, model_dirs=_named(args.models, args.model_dirs,
                                                                               "--models/--model-dirs"),
                      sets=_named(args.set_names, args.imagesets, "--set-names/--imagesets"), out=args.out,
                      figure=args.figure,
                      threads=args.threads, progress=not args.quiet, svg=args.svg)  # fmt: skip
    print(f"{args.out}: {info}")
    return 0


def cmd_tcav(args) -> int:
    from ..config import load_config
    from ..posthoc.tcav_tests import run_tcav

    df = run_tcav(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs"),
                  _named(args.set_names, args.imagesets, "--set-names/--imagesets"), args.out, args.cache_dir,
                  threads=args.threads, progress=not args.quiet)  # fmt: skip
    print(f"{args.out}: {len(df)} TCAV rows")
    return 0


def cmd_influence(args) -> int:
    from ..config import load_config
    from ..posthoc.influence import run_influence

    df = run_influence(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs"),
                       _named(args.set_names, args.imagesets, "--set-names/--imagesets"), args.out,
                       threads=args.threads, progress=not args.quiet)  # fmt: skip
    print(f"{args.out}: {len(df)} ICM rows")
    return 0


def cmd_study(args) -> int:
    from ..config import load_config
    from ..posthoc.study import build_study

    info = build_study(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs"),
                       sets=_named(args.set_names, args.imagesets, "--set-names/--imagesets"), tcav=args.tcav,
                       influence=args.influence,
                       out_dir=args.out_dir)  # fmt: skip
    print(f"{args.out_dir}: {info}")
    return 0


def cmd_study_analyse(args) -> int:
    from ..posthoc.study import analyse_responses_file

    res = analyse_responses_file(args.responses, args.out, alpha=args.alpha)
    print(f"{args.out}: {len(res['conditions'])} group x model conditions analysed")
    return 0


def cmd_summary(args) -> int:
    from ..config import load_config
    from ..posthoc.summary import run_summary

    s = run_summary(load_config(args.config), args.scores, attributions=_named(args.signals, args.attributions,
                                                                               "--signals/--attributions"),
                    tcav=args.tcav, influence=args.influence, study_analysis=args.study_analysis, out=args.out,
                    tables_dir=args.tables_dir)  # fmt: skip
    print(f"{args.out}: conditions {s['conditions']}")
    return 0


def significance(text: str) -> float:
    """argparse `type=` of --alpha: a finite number in (0, 1)."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def add_posthoc_parsers(sub, config_arg) -> None:
    def io(p, sets=True):
        config_arg(p)
        p.add_argument("--models", required=True, nargs="+", help="posthoc model names (normal, spurious_<signal>)")
        p.add_argument("--model-dirs", required=True, nargs="+", type=Path, help="one directory per model")
        if sets:
            p.add_argument("--set-names", required=True, nargs="+", help="image set names")
            p.add_argument("--imagesets", required=True, nargs="+", type=Path, help="one file per set name")

    def compute(p):
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("posthoc-train", help="train a posthoc model: normal or spurious_<signal> (rule posthoc_train)")
    config_arg(p)
    p.add_argument("--model", required=True, help="normal or spurious_<signal>")
    p.add_argument("--train-set", required=True, type=Path)
    p.add_argument("--val-set", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    compute(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("posthoc-scores", help="Adebayo spurious score of every model, signal and class (rule posthoc_scores)")
    io(p)
    p.add_argument("--out", required=True, type=Path, help="table (.parquet, with a .csv twin)")
    p.set_defaults(func=cmd_scores)

    p = sub.add_parser("posthoc-attributions", help="K-SSD, CCM, FAM, FAM-GT per image and method for one signal (rule posthoc_attributions)")
    io(p)
    p.add_argument("--signal", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path, help="attribution panels (PNG)")
    p.add_argument("--svg", type=Path, help="the same panels as SVG")
    compute(p)
    p.set_defaults(func=cmd_attributions)

    p = sub.add_parser("posthoc-tcav", help="TCAV scores of signal and core concepts for every posthoc model (rule posthoc_tcav)")
    io(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cache-dir", required=True, type=Path, help="captum CAV cache (keyed by checkpoint hash)")
    compute(p)
    p.set_defaults(func=cmd_tcav)

    p = sub.add_parser("posthoc-influence", help="TracInCPFast proponents and ICM per test image (rule posthoc_influence)")
    io(p)
    p.add_argument("--out", required=True, type=Path)
    compute(p)
    p.set_defaults(func=cmd_influence)

    p = sub.add_parser("posthoc-study", help="blinded study kit: stimuli, assignment, questionnaires, simulated check (rule posthoc_study)")
    io(p)
    p.add_argument("--tcav", required=True, type=Path)
    p.add_argument("--influence", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("posthoc-study-analyse", help="analyse collected study responses: difference vs control, ANOVA, Tukey-Kramer")
    p.add_argument("--responses", required=True, type=Path, help="CSV: participant, group, condition, method, likert[, rationale]")
    p.add_argument("--out", required=True, type=Path, help="JSON result (a .csv table beside it)")
    p.add_argument("--alpha", type=significance, default=0.05, help="significance level, in (0, 1)")
    p.set_defaults(func=cmd_study_analyse)

    p = sub.add_parser("posthoc-summary", help="results/posthoc/summary.json and Tables 1-3 (rule posthoc_summary)")
    config_arg(p)
    p.add_argument("--scores", required=True, type=Path)
    p.add_argument("--signals", required=True, nargs="+")
    p.add_argument("--attributions", required=True, nargs="+", type=Path, help="one table per signal")
    p.add_argument("--tcav", required=True, type=Path)
    p.add_argument("--influence", required=True, type=Path)
    p.add_argument("--study-analysis", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tables-dir", required=True, type=Path)
    p.set_defaults(func=cmd_summary)
