"""Command-line interface: one subcommand per pipeline rule, plus tools to look at outputs.

Every Snakemake rule calls one of these with explicit paths. Bad input exits with status 2 and a
single line `spurlab: error: <what and where>`; nothing is left under the output path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import SpurlabError


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", "-c", nargs="+", required=True, metavar="YAML",
        help="config file(s); later files override earlier ones key by key, as in Snakemake",
    )  # fmt: skip


def cmd_validate_config(args) -> int:
    from .config import load_config

    load_config(args.config)
    print(f"ok: {' + '.join(args.config)} is a valid spurlab config")
    return 0


def cmd_list_sets(args) -> int:
    from .config import load_config, set_names

    print("\n".join(set_names(load_config(args.config))))
    return 0


def cmd_make_set(args) -> int:
    from tqdm import tqdm

    from .config import load_config
    from .data.imagesets import write_imageset
    from .data.sets import build_plan

    cfg = load_config(args.config)
    plan, attrs = build_plan(cfg, args.set)
    t = time.perf_counter()
    with tqdm(total=plan.n, desc=args.set, unit="img", mininterval=2.0, disable=args.quiet) as bar:
        sha = write_imageset(args.out, plan.n, plan.chunks(args.threads), attrs, progress=bar)
    dt = time.perf_counter() - t
    print(f"{args.out}: {plan.n} images in {dt:.1f}s ({plan.n / dt:.0f} img/s incl. writing), sha256 {sha}")
    return 0


def cmd_datasets_summary(args) -> int:
    from .config import load_config
    from .data.summary import datasets_summary
    from .io import write_json

    cfg = load_config(args.config)
    summary = datasets_summary(cfg, args.sets, threads=args.threads)
    write_json(args.out, summary)
    print(f"{args.out}: {len(summary['sets'])} sets, generator {summary['images_per_second']:.0f} img/s")
    return 0


def cmd_contact_sheet(args) -> int:
    from .data.imagesets import open_imageset
    from .report.figures import contact_sheet

    with open_imageset(args.imageset) as s:
        contact_sheet(s, args.out, n=args.n)
    print(f"{args.out}: contact sheet of {args.imageset}")
    return 0


def cmd_inspect(args) -> int:
    from .inspect import describe

    print(describe(args.file, verify=args.verify))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="spurlab",
        description="Discover, measure and mitigate spurious features in image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"spurlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate-config", help="check config file(s) against the schema and cross-key rules")
    _config_arg(p)
    p.set_defaults(func=cmd_validate_config)

    p = sub.add_parser("list-sets", help="print the names of the image sets a config defines")
    _config_arg(p)
    p.set_defaults(func=cmd_list_sets)

    p = sub.add_parser("make-set", help="render one image set of the planted-cue benchmark to HDF5 (rule image_set)")
    _config_arg(p)
    p.add_argument("--set", required=True, help="set name, e.g. train, counterfactual, bam_os_train (see list-sets)")
    p.add_argument("--out", required=True, type=Path, help="output .h5 path (written atomically)")
    p.add_argument("--threads", type=int, default=1, help="render threads; output is identical for any value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_make_set)

    p = sub.add_parser("datasets-summary", help="verify image sets and write results/datasets/summary.json")
    _config_arg(p)
    p.add_argument("--sets", nargs="+", required=True, type=Path, help="image set files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1, help="threads for the throughput measurement")
    p.set_defaults(func=cmd_datasets_summary)

    p = sub.add_parser("contact-sheet", help="PNG grid of an image set's first images with masks outlined")
    p.add_argument("imageset", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("-n", type=int, default=48, help="number of images")
    p.set_defaults(func=cmd_contact_sheet)

    p = sub.add_parser("inspect", help="print a summary of a spurlab file (image set)")
    p.add_argument("file", type=Path)
    p.add_argument("--verify", action="store_true", help="also recompute the content hash")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpurlabError as e:
        print(f"spurlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
