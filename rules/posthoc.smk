# Adebayo et al. 2022 (docs/methods.md#spurious-contamination, #attribution-methods,
# #post-hoc-explanation-measures): normal and spurious models, spurious scores, attribution
# measures (K-SSD, CCM, FAM, FAM-GT), TCAV and TracIn KS tests, blinded study kit. Target `posthoc`.
from spurlab.config import (
    contamination_signals,
    posthoc_model_section,
    posthoc_model_sets,
    posthoc_models,
    posthoc_test_sets,
)

PH_MODELS = posthoc_models(config)
PH_SIGNALS = contamination_signals(config)
PH_TEST_SETS = posthoc_test_sets(config)
PH_TRAIN_SETS = [posthoc_model_sets(config, m)[0] for m in PH_MODELS]
PH_WEIGHTS = expand("results/posthoc/models/{m}/model.safetensors", m=PH_MODELS)


wildcard_constraints:
    ph_model=one_of(PH_MODELS),
    ph_signal=one_of(PH_SIGNALS),


rule posthoc_train:
    """Train the normal model (clean images) or a spurious model (signal on the aligned class);
    every epoch's checkpoint stays under checkpoints/ for TracIn."""
    input:
        train=lambda w: f"results/datasets/{posthoc_model_sets(config, w.ph_model)[0]}.h5",
        val=lambda w: f"results/datasets/{posthoc_model_sets(config, w.ph_model)[1]}.h5",
    output:
        weights="results/posthoc/models/{ph_model}/model.safetensors",
        meta="results/posthoc/models/{ph_model}/meta.json",
    log:
        "logs/posthoc/train/{ph_model}.log",
    benchmark:
        "benchmarks/posthoc/train/{ph_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        section=lambda w: posthoc_model_section(config, w.ph_model),
        configs=CONFIGFILES,
    shell:
        "spurlab train --config {params.configs} --model {wildcards.ph_model} "
        "--train-set {input.train} --val-set {input.val} "
        "--out-dir results/posthoc/models/{wildcards.ph_model} --threads {threads} --quiet > {log} 2>&1"


rule posthoc_scores:
    """Spurious score (docs/methods.md#post-hoc-explanation-measures) of every model for every signal and class; model conditions."""
    input:
        weights=PH_WEIGHTS,
        sets=set_paths(PH_TEST_SETS),
    output:
        table="results/posthoc/spurious_scores.parquet",
        csv="results/posthoc/spurious_scores.csv",
    log:
        "logs/posthoc/scores.log",
    benchmark:
        "benchmarks/posthoc/scores.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the thresholds and the seed of the scores' bootstrap intervals
        section={k: config["posthoc"][k] for k in ("thresholds", "seed")},
        configs=CONFIGFILES,
        models=" ".join(PH_MODELS),
        model_dirs=model_dirs_arg("posthoc", PH_MODELS),
        set_names=" ".join(PH_TEST_SETS),
    shell:
        "spurlab posthoc-scores --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --out {output.table} > {log} 2>&1"


rule posthoc_attributions:
    """Per image and method: K-SSD, CCM, FAM, FAM-GT (SSIM of Adebayo-normalised maps) for one
    signal; attribution panels (normal/spurious model x normal/spurious input)."""
    input:
        weights=lambda w: [
            f"results/posthoc/models/{m}/model.safetensors"
            for m in ["normal", f"spurious_{w.ph_signal}"]
        ],
        sets=lambda w: set_paths(["contam_clean_test", f"contam_{w.ph_signal}_test"]),
    output:
        table="results/posthoc/attributions/{ph_signal}.parquet",
        csv="results/posthoc/attributions/{ph_signal}.csv",
        # a report figure (issue #9), written here since the maps exist only in this job
        figure=report(
            "results/figures/posthoc_attributions_{ph_signal}.png",
            caption="../workflow/report/posthoc_panels.rst",
            category="Figures",
            subcategory="posthoc_attributions",
        ),
        svg="results/figures/posthoc_attributions_{ph_signal}.svg",
    log:
        "logs/posthoc/attributions/{ph_signal}.log",
    benchmark:
        "benchmarks/posthoc/attributions/{ph_signal}.tsv"
    conda:
        "../envs/torch.yaml"
    # one thread: this small-image attribution work keeps one core busy at two threads as well,
    # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        section={
            k: config["posthoc"][k]
            for k in ["methods", "attribution", "n_images", "panel_images", "seed"]
        },
        configs=CONFIGFILES,
        models=lambda w: f"normal spurious_{w.ph_signal}",
        model_dirs=lambda w: model_dirs_arg(
            "posthoc", ["normal", f"spurious_{w.ph_signal}"]
        ),
        set_names=lambda w: f"contam_clean_test contam_{w.ph_signal}_test",
    shell:
        "spurlab posthoc-attributions --config {params.configs} --signal {wildcards.ph_signal} "
        "--models {params.models} --model-dirs {params.model_dirs} "
        "--set-names {params.set_names} --imagesets {input.sets} --out {output.table} "
        "--figure {output.figure} --svg {output.svg} --threads {threads} --quiet > {log} 2>&1"


rule posthoc_tcav:
    """TCAV scores of the signal concepts and core concepts (shapes, scenes, colours) for every
    model on normal and spurious inputs of the aligned class; CAV cache keyed by checkpoint hash.
    """
    input:
        weights=PH_WEIGHTS,
        sets=set_paths(["contam_clean_train"] + PH_TEST_SETS),
    output:
        table="results/posthoc/tcav.parquet",
        csv="results/posthoc/tcav.csv",
    log:
        "logs/posthoc/tcav.log",
    benchmark:
        "benchmarks/posthoc/tcav.tsv"
    conda:
        "../envs/torch.yaml"
    # one thread: this small-image attribution work keeps one core busy at two threads as well,
    # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section={k: config["posthoc"][k] for k in ["tcav", "seed"]},
        configs=CONFIGFILES,
        models=" ".join(PH_MODELS),
        model_dirs=model_dirs_arg("posthoc", PH_MODELS),
        set_names=" ".join(["contam_clean_train"] + PH_TEST_SETS),
    shell:
        "spurlab posthoc-tcav --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --out {output.table} --cache-dir results/posthoc/tcav_cache "
        "--threads {threads} --quiet > {log} 2>&1"


rule posthoc_influence:
    """TracInCPFast over every epoch's checkpoint: top proponents and ICM of each test image, for
    every model on normal and spurious inputs."""
    input:
        weights=PH_WEIGHTS,
        sets=set_paths(sorted(set(PH_TRAIN_SETS)) + PH_TEST_SETS),
    output:
        table="results/posthoc/influence.parquet",
        csv="results/posthoc/influence.csv",
    log:
        "logs/posthoc/influence.log",
    benchmark:
        "benchmarks/posthoc/influence.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section={k: config["posthoc"][k] for k in ["influence", "seed"]},
        configs=CONFIGFILES,
        models=" ".join(PH_MODELS),
        model_dirs=model_dirs_arg("posthoc", PH_MODELS),
        set_names=" ".join(sorted(set(PH_TRAIN_SETS)) + PH_TEST_SETS),
    shell:
        "spurlab posthoc-influence --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --out {output.table} --threads {threads} --quiet > {log} 2>&1"


rule posthoc_study:
    """Blinded study kit: stimuli per model condition x method, randomised group assignment,
    self-contained HTML questionnaires; the analysis run on simulated responses with a known effect.
    """
    input:
        weights=PH_WEIGHTS,
        sets=set_paths(sorted(set(PH_TRAIN_SETS)) + PH_TEST_SETS),
        tcav="results/posthoc/tcav.parquet",
        influence="results/posthoc/influence.parquet",
    output:
        assignment="results/posthoc/study/assignment.csv",
        blinded="results/posthoc/study/questionnaire_blinded.html",
        not_blinded="results/posthoc/study/questionnaire_not_blinded.html",
        simulated="results/posthoc/study/simulated_responses.csv",
        analysis="results/posthoc/study/simulated_analysis.json",
    log:
        "logs/posthoc/study.log",
    benchmark:
        "benchmarks/posthoc/study.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        section={k: config["posthoc"][k] for k in ["study", "attribution", "seed"]},
        configs=CONFIGFILES,
        models=" ".join(PH_MODELS),
        model_dirs=model_dirs_arg("posthoc", PH_MODELS),
        set_names=" ".join(sorted(set(PH_TRAIN_SETS)) + PH_TEST_SETS),
    shell:
        "spurlab posthoc-study --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --set-names {params.set_names} "
        "--imagesets {input.sets} --tcav {input.tcav} --influence {input.influence} "
        "--out-dir results/posthoc/study > {log} 2>&1"


rule posthoc_summary:
    """results/posthoc/summary.json; the paper's Tables 1-3 (parquet + csv)."""
    input:
        scores="results/posthoc/spurious_scores.parquet",
        attributions=expand("results/posthoc/attributions/{s}.parquet", s=PH_SIGNALS),
        tcav="results/posthoc/tcav.parquet",
        influence="results/posthoc/influence.parquet",
        study="results/posthoc/study/simulated_analysis.json",
    output:
        summary="results/posthoc/summary.json",
        table1="results/posthoc/tables/table1_attributions.parquet",
        table2="results/posthoc/tables/table2_tcav_ks.parquet",
        table3="results/posthoc/tables/table3_influence_ks.parquet",
    log:
        "logs/posthoc/summary.log",
    benchmark:
        "benchmarks/posthoc/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section={k: config["posthoc"][k] for k in ["thresholds", "ks_alpha", "seed"]},
        configs=CONFIGFILES,
        signals=" ".join(PH_SIGNALS),
    shell:
        "spurlab posthoc-summary --config {params.configs} --scores {input.scores} "
        "--signals {params.signals} --attributions {input.attributions} --tcav {input.tcav} "
        "--influence {input.influence} --study-analysis {input.study} --out {output.summary} "
        "--tables-dir results/posthoc/tables > {log} 2>&1"


rule posthoc:
    """Target: Adebayo et al.'s measures (models, scores, Tables 1-3, panels, study kit)."""
    input:
        "results/posthoc/summary.json",
        expand("results/figures/posthoc_attributions_{s}.png", s=PH_SIGNALS),
        "results/posthoc/study/questionnaire_blinded.html",
