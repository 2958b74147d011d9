"""The report (rules/report.smk): one tidy table of every metric and summary.md, the figures, the
static site."""

from __future__ import annotations

from pathlib import Path

from .args import key_paths
from .table import CONFIG, Command, arg, path, text


def report_tables(cfg: dict, a) -> int:
    from ..io import sha256_file
    from ..io.tables import write_table
    from ..report.summary_md import write_summary_md
    from ..report.tables import Vocabulary, aggregate

    summaries = {k: v[0] for k, v in key_paths(a.summary, "--summary").items()}
    details = [(k, p) for k, ps in key_paths(a.detail, "--detail").items() for p in ps]
    df = aggregate(summaries, details, Vocabulary.from_config(cfg))
    prov = {"inputs_sha256": {str(p): sha256_file(p) for p in [*summaries.values(), *(p for _, p in details)]}}
    write_table(df, a.out, prov)
    write_summary_md(summaries, a.summary_md)
    print(f"{a.out}: {len(df)} rows from {len(summaries)} stage summaries and {len(details)} tables; {a.summary_md}")
    return 0


def report_figure(_, a) -> int:
    from ..report.figures import make_report_figure

    make_report_figure(a.name, key_paths(a.input, "--input"), a.out, a.svg, {"set": a.set})
    print(f"{a.out}, {a.svg}")
    return 0


def report_site(_, a) -> int:
    from ..report.site import build_site

    n = build_site(a.out, subsets=a.subsets, annotations=a.annotations, imageset=a.imageset, components=a.components,
                   npca_pairs=a.npca_pairs, npca_imageset=a.npca_imageset, retrieval=a.retrieval, retrieved=a.retrieved,
                   spufix=a.spufix, noise=a.noise or [], corruptions=a.corruptions or [], n_show=a.n_show)  # fmt: skip
    print(f"{a.out}: {n['pages']} pages ({n['feature_pages']} features, {n['component_pages']} components, index), "
          f"{n['images']} images, {n['bytes'] / 1e6:.1f} MB")  # fmt: skip
    return 0


COMMANDS = (
    Command("report-tables", "report", "tidy table of every metric and results/summary.md (rule report_tables)",
            report_tables, (
        arg("--summary", nargs="+", required=True, metavar="STAGE=JSON", help="stage summaries, in report order"),
        arg("--detail", nargs="*", default=[], metavar="KIND=PARQUET",
            help="per-unit stage tables: noise, gaps, corruptions, tuning, spufix, bam_verification, tcav"),
        path("--out", "the tidy table (.parquet; a .csv twin beside it)"),
        path("--summary-md"),
    ), settings=CONFIG),
    Command("report-figure", "report", "one report figure as PNG + SVG (rule report_figure)", report_figure, (
        text("--name", "noise_curves, spurious_gaps, gap_correlations, tuning_ranks, ..."),
        arg("--input", nargs="+", required=True, metavar="KEY=PATH"),
        arg("--set", default=None, help="the image set shown, where a figure shows images"),
        path("--out", "PNG"),
        path("--svg"),
    )),
    Command("report-site", "report", "static site: index with search, one page per (class, feature) and (class, component)",
            report_site, (
        path("--out", "the site directory (replaced whole)"),
        path("--subsets"),
        path("--annotations"),
        path("--imageset", "the image set of the subsets file"),
        path("--components", "results/npca/components.h5", required=False),
        path("--npca-pairs", required=False),
        path("--npca-imageset", required=False),
        path("--retrieval", required=False),
        path("--retrieved", required=False),
        path("--spufix", required=False),
        arg("--noise", nargs="*", type=Path),
        arg("--corruptions", nargs="*", type=Path),
        arg("--n-show", type=int, default=5, help="images per row on a page"),
    )),
)  # fmt: skip
