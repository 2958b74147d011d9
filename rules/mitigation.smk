# Group robustness beyond the five papers (docs/methods.md#group-robustness-and-last-layer-retraining): per audited
# model, on cached features, the ERM head, DFR (Kirichenko et al. 2023), JTT (Liu et al. 2021),
# low-spuriosity tuning and SpuFix, by worst-group accuracy on the counterfactual twins. Target `mitigation`.

MIT = config["mitigation"]
MIT_MODELS = mitigation_models(config)


wildcard_constraints:
    mit_model=one_of(MIT_MODELS),


rule group_robustness:
    """One audited model: its ERM head, DFR, JTT, low-spuriosity tuning and SpuFix, each with mean
    accuracy, spurious gap and worst-group accuracy, and the labels it needed."""
    input:
        weights="results/models/{mit_model}/model.safetensors",
        train=f"results/features/{{mit_model}}/{SPU['stats_set']}.h5",
        val=f"results/features/{{mit_model}}/{MIT['val_set']}.h5",
        test=f"results/features/{{mit_model}}/{MIT['test_set']}.h5",
        counterfactual="results/features/{mit_model}/counterfactual.h5",
        tuning_val=f"results/features/{{mit_model}}/{SPU['gap_set']}.h5",
        val_set=f"results/datasets/{MIT['val_set']}.h5",
        counterfactual_set="results/datasets/counterfactual.h5",
        rankings="results/spuriosity/rankings.parquet",
        tuning="results/spuriosity/tuning/{mit_model}.parquet",
        robust_weights=f"{SAL_MODEL}/model.safetensors",
        robust_train=f"results/features/{SAL['model']}/{SAL['importance_set']}.h5",
        bases="results/npca/bases.h5",
        pairs="results/npca/pairs.parquet",
        harmful="results/npca/harmful.parquet",
    output:
        table="results/mitigation/{mit_model}.parquet",
        csv="results/mitigation/{mit_model}.csv",
        groups="results/mitigation/groups/{mit_model}.parquet",
        groups_csv="results/mitigation/groups/{mit_model}.csv",
    log:
        "logs/mitigation/{mit_model}.log",
    benchmark:
        "benchmarks/mitigation/{mit_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        section=MIT,
        tuning=SPU["tuning"],
        configs=CONFIGFILES,
        robust=SAL["model"],
        robust_dir=lambda w: SAL_MODEL,
    shell:
        "spurlab group-robustness --config {params.configs} --model {wildcards.mit_model} "
        "--model-dir results/models/{wildcards.mit_model} --train-features {input.train} "
        "--val-features {input.val} --test-features {input.test} "
        "--counterfactual-features {input.counterfactual} --tuning-val-features {input.tuning_val} "
        "--val-set {input.val_set} --counterfactual-set {input.counterfactual_set} "
        "--rankings {input.rankings} --tuning {input.tuning} --robust {params.robust} "
        "--robust-dir {params.robust_dir} --robust-train-features {input.robust_train} "
        "--bases {input.bases} --pairs {input.pairs} --harmful {input.harmful} "
        "--out {output.table} --out-groups {output.groups} --threads {threads} > {log} 2>&1"


rule mitigation_summary:
    """results/mitigation/summary.json, the mitigation table and its figure."""
    input:
        tables=expand("results/mitigation/{m}.parquet", m=MIT_MODELS),
        groups=expand("results/mitigation/groups/{m}.parquet", m=MIT_MODELS),
    output:
        summary="results/mitigation/summary.json",
        table="results/mitigation/table.parquet",
        csv="results/mitigation/table.csv",
        figure=report(
            "results/mitigation/mitigation.png",
            caption="../workflow/report/mitigation.rst",
            category="Mitigation",
        ),
        svg="results/mitigation/mitigation.svg",
    log:
        "logs/mitigation/summary.log",
    benchmark:
        "benchmarks/mitigation/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=" ".join(MIT_MODELS),
    shell:
        "spurlab mitigation-summary --models {params.models} --tables {input.tables} "
        "--groups {input.groups} --out {output.summary} --out-table {output.table} "
        "--figure {output.figure} --svg {output.svg} > {log} 2>&1"


rule mitigation:
    """Target: group robustness of the audited models (DFR, JTT, low-spuriosity tuning, SpuFix)."""
    input:
        "results/mitigation/summary.json",
        "results/mitigation/table.parquet",
        "results/mitigation/mitigation.png",
