# BAM (Yang & Kim 2019; docs/methods.md#bam-compositing, #attribution-methods, #bam-metrics): models with
# known relative feature importance,
# attribution region means, MCS / IDR / IIR, TCAV. Target `bam`.
from spurlab.config import (
    bam_attribution_parts,
    bam_model_section,
    bam_model_sets,
    bam_models,
    bam_part_inputs,
    kseries_codes,
)

BAM_MODELS = bam_models(config)
BAM_PARTS = bam_attribution_parts(config)
BAM_CODES = kseries_codes(config)
BAM_VERIFY_SETS = [f"bam_{v}_test" for v in ["os", "0s", "og"] + BAM_CODES]
BAM_TCAV_SETS = ["bam_os_train", "bam_0s_train", "bam_os_test", "bam_k100_test"]


wildcard_constraints:
    bam_model=one_of(BAM_MODELS),
    bam_part=one_of(BAM_PARTS),


rule bam_train:
    """Train f_o (object labels), f_s (scene labels) or a k-series scene classifier f_kNNN."""
    input:
        train=lambda w: f"results/datasets/{bam_model_sets(w.bam_model)[0]}.h5",
        val=lambda w: f"results/datasets/{bam_model_sets(w.bam_model)[1]}.h5",
    output:
        weights="results/bam/models/{bam_model}/model.safetensors",
        meta="results/bam/models/{bam_model}/meta.json",
    log:
        "logs/bam/train/{bam_model}.log",
    benchmark:
        "benchmarks/bam/train/{bam_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        section=lambda w: bam_model_section(config, w.bam_model),
        configs=CONFIGFILES,
    shell:
        "spurlab train --config {params.configs} --model {wildcards.bam_model} "
        "--train-set {input.train} --val-set {input.val} "
        "--out-dir results/bam/models/{wildcards.bam_model} --threads {threads} --quiet > {log} 2>&1"


rule bam_verify:
    """Verification table (paper Fig. 2): f_o, f_s on X_os, X_0s, X_og; k-series accuracy drops."""
    input:
        weights=expand("results/bam/models/{m}/model.safetensors", m=BAM_MODELS),
        sets=set_paths(BAM_VERIFY_SETS),
    output:
        table="results/bam/verification.parquet",
        csv="results/bam/verification.csv",
    log:
        "logs/bam/verify.log",
    benchmark:
        "benchmarks/bam/verify.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        configs=CONFIGFILES,
        models=" ".join(BAM_MODELS),
        model_dirs=model_dirs_arg("bam", BAM_MODELS),
        set_names=" ".join(BAM_VERIFY_SETS),
    shell:
        "spurlab bam-verify --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --out {output.table} > {log} 2>&1"


rule bam_attributions:
    """Region means g_c of every attribution method and both normalisers for one part
    (contrast f_o vs f_s, one k-series model, or IIR with its optimised delta)."""
    input:
        weights=lambda w: [
            f"results/bam/models/{m}/model.safetensors"
            for m in bam_part_inputs(config, w.bam_part)["models"]
        ],
        sets=lambda w: set_paths(bam_part_inputs(config, w.bam_part)["sets"]),
    output:
        table="results/bam/attributions/{bam_part}.parquet",
        csv="results/bam/attributions/{bam_part}.csv",
    log:
        "logs/bam/attributions/{bam_part}.log",
    benchmark:
        "benchmarks/bam/attributions/{bam_part}.tsv"
    conda:
        "../envs/torch.yaml"
    # one thread: this small-image attribution work keeps one core busy at two threads as well,
    # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section=config["bam"]["benchmark"],
        configs=CONFIGFILES,
        models=lambda w: " ".join(bam_part_inputs(config, w.bam_part)["models"]),
        model_dirs=lambda w: model_dirs_arg(
            "bam", bam_part_inputs(config, w.bam_part)["models"]
        ),
        set_names=lambda w: " ".join(bam_part_inputs(config, w.bam_part)["sets"]),
    shell:
        "spurlab bam-attributions --config {params.configs} --part {wildcards.bam_part} "
        "--models {params.models} --model-dirs {params.model_dirs} "
        "--set-names {params.set_names} --imagesets {input.sets} --out {output.table} "
        "--threads {threads} --quiet > {log} 2>&1"


rule bam_tcav:
    """TCAV of the common-object concept for every BAM model, random-concept t-tests; captum's
    CAV cache under results/bam/tcav_cache, keyed by checkpoint hash."""
    input:
        weights=expand("results/bam/models/{m}/model.safetensors", m=BAM_MODELS),
        sets=set_paths(BAM_TCAV_SETS),
    output:
        table="results/bam/tcav.parquet",
        csv="results/bam/tcav.csv",
    log:
        "logs/bam/tcav.log",
    benchmark:
        "benchmarks/bam/tcav.tsv"
    conda:
        "../envs/torch.yaml"
    # one thread: this small-image attribution work keeps one core busy at two threads as well,
    # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section=config["bam"]["benchmark"]["tcav"],
        configs=CONFIGFILES,
        models=" ".join(BAM_MODELS),
        model_dirs=model_dirs_arg("bam", BAM_MODELS),
        set_names=" ".join(BAM_TCAV_SETS),
    shell:
        "spurlab bam-tcav --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --out {output.table} --cache-dir results/bam/tcav_cache "
        "--threads {threads} --quiet > {log} 2>&1"


rule bam_summary:
    """results/bam/summary.json: MCS (and random baseline), k-series rho, IDR, IIR, TCAV MCS,
    verification accuracies and drops; the figure (MCS bars, k-series curves)."""
    input:
        verification="results/bam/verification.parquet",
        contrast="results/bam/attributions/contrast.parquet",
        kseries=expand("results/bam/attributions/{c}.parquet", c=BAM_CODES),
        iir="results/bam/attributions/iir.parquet",
        tcav="results/bam/tcav.parquet",
    output:
        summary="results/bam/summary.json",
        figure=report(
            "results/bam/mcs.png",
            caption="../workflow/report/bam_mcs.rst",
            category="BAM",
        ),
    log:
        "logs/bam/summary.log",
    benchmark:
        "benchmarks/bam/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section=config["bam"]["benchmark"],
        configs=CONFIGFILES,
        codes=" ".join(BAM_CODES),
    shell:
        "spurlab bam-summary --config {params.configs} --verification {input.verification} "
        "--contrast {input.contrast} --kseries-codes {params.codes} --kseries {input.kseries} "
        "--iir {input.iir} --tcav {input.tcav} --out {output.summary} "
        "--figure {output.figure} > {log} 2>&1"


rule bam:
    """Target: Yang & Kim's benchmark (models, verification, attributions, metrics, TCAV)."""
    input:
        "results/bam/summary.json",
        "results/bam/mcs.png",
