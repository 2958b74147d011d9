"""The `spurlab interventions-*` subcommands (rules/interventions.smk; docs/methods.md#interventional-checks-of-explanations):
one per rule. Registered by `spurlab.cli.build_parser`."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpurlabError
from .args import check_model_dirs


def _named(names, paths, what: str, models: bool = False) -> dict:
    if len(names) != len(paths):
        raise SpurlabError(f"{what}: {len(names)} names but {len(paths)} paths")
    if models:  # each directory must hold the model it is named as
        check_model_dirs(names, paths, "--models")
    return dict(zip(names, map(str, paths)))


def cmd_bam(args) -> int:
    from ..config import load_config
    from ..measure.interventions_bam import run_bam_interventions

    info = run_bam_interventions(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs", models=True),
                                 _named(args.set_names, args.imagesets, "--set-names/--imagesets"), args.out,
                                 threads=args.threads)  # fmt: skip
    print(f"{args.out}: {info}")
    return 0


def cmd_posthoc(args) -> int:
    from ..config import load_config
    from ..measure.interventions_posthoc import run_posthoc_interventions

    info = run_posthoc_interventions(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs", models=True),
                                     _named(args.set_names, args.imagesets, "--set-names/--imagesets"), args.out,
                                     figure=args.figure, svg=args.svg, threads=args.threads)  # fmt: skip
    print(f"{args.out}: {info}")
    return 0


def cmd_background(args) -> int:
    from ..config import load_config
    from ..measure.background_swap import run_background_swap

    info = run_background_swap(load_config(args.config), _named(args.models, args.model_dirs, "--models/--model-dirs", models=True),
                               args.imageset, args.out, threads=args.threads)  # fmt: skip
    print(f"{args.out}: {info}")
    return 0


def cmd_summary(args) -> int:
    from ..config import load_config
    from ..measure.interventions_summary import run_interventions_summary

    s = run_interventions_summary(load_config(args.config), args.out, args.figure, svg=args.svg, bam=args.bam,
                                  bam_contrast=args.bam_contrast, bam_summary=args.bam_summary, posthoc=args.posthoc,
                                  posthoc_attributions=args.posthoc_attributions or (), posthoc_summary=args.posthoc_summary,
                                  background=args.background, examples=args.examples or ())  # fmt: skip
    print(f"{args.out}: planted order holds: {s['planted_order_holds']}")
    return 0


def add_interventions_parsers(sub, config_arg) -> None:
    def io(p, sets=True):
        config_arg(p)
        p.add_argument("--models", required=True, nargs="+", help="model names")
        p.add_argument("--model-dirs", required=True, nargs="+", type=Path, help="one directory per model")
        if sets:
            p.add_argument("--set-names", required=True, nargs="+", help="image set names")
            p.add_argument("--imagesets", required=True, nargs="+", type=Path, help="one file per set name")
        p.add_argument("--out", required=True, type=Path, help="table (.parquet, with a .csv twin)")
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")

    p = sub.add_parser(
        "interventions-bam",
        help="deletion / preservation of BAM's methods on f_o and f_s, objects and scenes removed (rule interventions_bam)",
    )
    io(p)
    p.set_defaults(func=cmd_bam)

    p = sub.add_parser(
        "interventions-posthoc",
        help="deletion / preservation of the post hoc methods, signals and objects removed by re-rendering (rule interventions_posthoc)",
    )
    io(p)
    p.add_argument("--figure", required=True, type=Path, help="example twins and maps (PNG)")
    p.add_argument("--svg", type=Path, help="the same as SVG")
    p.set_defaults(func=cmd_posthoc)

    p = sub.add_parser(
        "interventions-background",
        help="prediction flips of every model on test images re-rendered on another scene (rule interventions_background)",
    )
    io(p, sets=False)
    p.add_argument("--imageset", required=True, type=Path, help="the planted-cue test set")
    p.set_defaults(func=cmd_background)

    p = sub.add_parser(
        "interventions-summary", help="results/interventions/summary.json and its figure (rule interventions_summary)"
    )
    config_arg(p)
    p.add_argument("--bam", type=Path, help="the BAM family table, if any")
    p.add_argument("--bam-contrast", type=Path, help="results/bam/attributions/contrast.parquet (same checkpoints)")
    p.add_argument("--bam-summary", type=Path, help="results/bam/summary.json (MCS per method)")
    p.add_argument("--posthoc", type=Path, help="the post hoc family table, if any")
    p.add_argument("--posthoc-attributions", nargs="+", type=Path, help="results/posthoc/attributions/<signal>.parquet")
    p.add_argument("--posthoc-summary", type=Path, help="results/posthoc/summary.json (K-SSD per method)")
    p.add_argument("--background", type=Path, help="the background-swap table, if any")
    p.add_argument("--examples", nargs="+", type=Path, help="the family jobs' example figures, named in the summary")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path, help="PNG")
    p.add_argument("--svg", type=Path, help="the same as SVG")
    p.set_defaults(func=cmd_summary)
