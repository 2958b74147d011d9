# Report (docs/architecture.md, stage 7): every stage's numbers in one tidy table and
# results/summary.md, the papers' key figures (PNG + SVG, registered for `snakemake --report`),
# and a static site with one page per (class, feature) and (class, component). Target `report`.
# The Snakemake HTML report itself is `snakemake --report results/report.html` (the Makefile's
# `run` recipe), since a rule cannot build the report of its own workflow.
from pathlib import Path

from spurlab.report.figures import REPORT_FIGURES

# Stage summaries aggregated into results/tables/metrics.* and results/summary.md, in report order.
# A new stage is one more entry here.
REPORT_SUMMARIES = {
    # the suite's counterfactual gaps: the benchmark's acceptance table reads them
    **({"models": "results/models/summary.json"} if benchmark_on(config) else {}),
    "salient": "results/salient/summary.json",
    "spuriosity": "results/spuriosity/summary.json",
    "npca": "results/npca/summary.json",
    **({"bam": "results/bam/summary.json"} if BAM_ON else {}),
    **({"lightweight": "results/lightweight/summary.json"} if LW_MODEL else {}),
    **({"posthoc": "results/posthoc/summary.json"} if PH_ON else {}),
    **({"mitigation": "results/mitigation/summary.json"} if MIT_ON else {}),
    **({"interventions": "results/interventions/summary.json"} if IV_ON else {}),
}
# Per-unit stage tables whose rows (with n and SEM) go into the tidy table.
REPORT_DETAILS = (
    [("noise", f"results/salient/noise/{m}.parquet") for m in NOISE_MODELS]
    + [("gaps", "results/spuriosity/gaps.parquet")]
    + [
        ("corruptions", f"results/spuriosity/corruptions/{m}.parquet")
        for m in SPU_MODELS
    ]
    + [("tuning", f"results/spuriosity/tuning/{m}.parquet") for m in SPU_MODELS]
    + [("spufix", "results/npca/spufix.parquet")]
    + (
        [
            ("bam_verification", "results/bam/verification.parquet"),
            ("tcav", "results/bam/tcav.parquet"),
        ]
        if BAM_ON
        else []
    )
)
SUBSET_SET = f"results/datasets/{SAL['subset_set']}.h5"
# Inputs of each report figure (spurlab.report.figures.make_report_figure), by key.
FIGURE_INPUTS = {
    "noise_curves": {
        "noise": expand("results/salient/noise/{m}.parquet", m=NOISE_MODELS),
        "summary": ["results/salient/summary.json"],
    },
    "spurious_gaps": {
        "models": ["results/spuriosity/gap_models.parquet"],
        "gaps": ["results/spuriosity/gaps.parquet"],
    },
    "gap_correlations": {
        "correlations": ["results/spuriosity/gap_correlations.parquet"]
    },
    "tuning_ranks": {
        "tuning": expand("results/spuriosity/tuning/{m}.parquet", m=SPU_MODELS)
    },
    "spuriosity_extremes": {
        "rankings": ["results/spuriosity/rankings.parquet"],
        "imageset": [f"results/datasets/{SPU['gap_set']}.h5"],
    },
    "npca_components": {
        "components": ["results/npca/components.h5"],
        "pairs": ["results/npca/pairs.parquet"],
        "imageset": [SUBSET_SET],
    },
    "spufix": {"models": ["results/npca/spufix_models.parquet"]},
    **({"bam_mcs": {"summary": ["results/bam/summary.json"]}} if BAM_ON else {}),
}
REPORT_FIGURE_NAMES = [f for f in REPORT_FIGURES if f in FIGURE_INPUTS]


wildcard_constraints:
    report_figure=one_of(REPORT_FIGURE_NAMES),


rule report_tables:
    """results/tables/metrics.{parquet,csv}: one row per model / class / feature / method / setting
    and metric, with n and SEM; results/summary.md: the headline numbers, one sentence each.
    """
    input:
        summaries=list(REPORT_SUMMARIES.values()),
        details=[p for _, p in REPORT_DETAILS],
    output:
        table="results/tables/metrics.parquet",
        csv=report(
            "results/tables/metrics.csv",
            caption="../workflow/report/metrics_table.rst",
            category="Tables",
        ),
        summary=report(
            "results/summary.md",
            caption="../workflow/report/summary_md.rst",
            category="Summary",
        ),
    log:
        "logs/report/tables.log",
    benchmark:
        "benchmarks/report/tables.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        configs=CONFIGFILES,
        summaries=" ".join(f"{s}={p}" for s, p in REPORT_SUMMARIES.items()),
        details=" ".join(f"{k}={p}" for k, p in REPORT_DETAILS),
    shell:
        "spurlab report-tables --config {params.configs} --summary {params.summaries} "
        "--detail {params.details} --out {output.table} --summary-md {output.summary} > {log} 2>&1"


rule report_figure:
    """One of the papers' key figures from the stage outputs, PNG + SVG (caption per figure in
    workflow/report/figures/)."""
    input:
        lambda w: [p for ps in FIGURE_INPUTS[w.report_figure].values() for p in ps],
    output:
        png=report(
            "results/figures/{report_figure}.png",
            caption="../workflow/report/figure.rst",
            category="Figures",
            subcategory="{report_figure}",
        ),
        svg="results/figures/{report_figure}.svg",
    log:
        "logs/report/figures/{report_figure}.log",
    benchmark:
        "benchmarks/report/figures/{report_figure}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        inputs=lambda w: " ".join(
            f"{k}={p}" for k, ps in FIGURE_INPUTS[w.report_figure].items() for p in ps
        ),
        set=SPU["gap_set"],
        caption=lambda w: Path(
            workflow.basedir, "workflow", "report", "figures", f"{w.report_figure}.rst"
        ).read_text(),
    shell:
        "spurlab report-figure --name {wildcards.report_figure} --input {params.inputs} "
        "--set {params.set} --out {output.png} --svg {output.svg} > {log} 2>&1"


rule report_site:
    """results/site/: index.html with a search over classes, one page per (class, feature) and per
    (class, component) with top / bottom images, heatmaps, attacks or NPFVs, votes and metrics.
    """
    input:
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
        imageset=SUBSET_SET,
        components="results/npca/components.h5",
        npca_pairs="results/npca/pairs.parquet",
        retrieval="results/npca/retrieval.parquet",
        retrieved="results/npca/retrieved.h5",
        spufix="results/npca/spufix.parquet",
        noise=expand("results/salient/noise/{m}.parquet", m=NOISE_MODELS),
        corruptions=expand("results/spuriosity/corruptions/{m}.parquet", m=SPU_MODELS),
    output:
        directory("results/site"),
    log:
        "logs/report/site.log",
    benchmark:
        "benchmarks/report/site.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        n_show=5,
    shell:
        "spurlab report-site --out {output} --subsets {input.subsets} "
        "--annotations {input.annotations} --imageset {input.imageset} "
        "--components {input.components} --npca-pairs {input.npca_pairs} "
        "--npca-imageset {input.imageset} --retrieval {input.retrieval} "
        "--retrieved {input.retrieved} --spufix {input.spufix} --noise {input.noise} "
        "--corruptions {input.corruptions} --n-show {params.n_show} > {log} 2>&1"


rule report:
    """Target: tables, summary.md, figures (PNG + SVG) and the static site (issue #9)."""
    input:
        "results/tables/metrics.parquet",
        "results/summary.md",
        expand("results/figures/{f}.{ext}", f=REPORT_FIGURE_NAMES, ext=["png", "svg"]),
        "results/site",
