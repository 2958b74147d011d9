# Spurious ImageNet (Neuhaus et al. 2023): class-wise neural PCA of the discovery model (docs/methods.md#class-wise-neural-pca),
# NPFVs and annotation (4.6-4.7), cue-only retrieval, spurious score (5.5) and SpuFix (6.2).

NPCA = config["npca"]
NPCA_MODEL = SAL["model"]
NPCA_SUITE = list(config["models"])
NPCA_POOL = NPCA["retrieval"]["pool_sets"]
NPCA_VALIDATION = (
    [NPCA["retrieval"]["validation_set"]] if NPCA["retrieval"]["validation_set"] else []
)


rule npca_bases:
    """Per class: mean, leading principal components and eigenvalues of W[k] * phi(x) (eqs. 1-6),
    for one class shard (compute.class_shards); npca_bases_merge joins the shards."""
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        features=f"results/features/{SAL['model']}/{SAL['importance_set']}.h5",
    output:
        temp("results/npca/shards/bases.{shard}.h5"),
    log:
        "logs/npca/bases.{shard}.log",
    benchmark:
        "benchmarks/npca/bases.{shard}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section={
            k: NPCA[k]
            for k in ("components", "solver", "oversample", "power_iterations")
        },
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
        shards=N_SHARDS,
    shell:
        "spurlab npca --config {params.configs} --model-dir {params.model_dir} "
        "--features {input.features} --out {output} --shard {wildcards.shard}/{params.shards} "
        "--threads {threads} --quiet > {log} 2>&1"


rule npca_bases_merge:
    """The class shards of npca_bases in one file, as one whole job would write it."""
    input:
        expand("results/npca/shards/bases.{shard}.h5", shard=SHARDS),
    output:
        "results/npca/bases.h5",
    log:
        "logs/npca/bases_merge.log",
    benchmark:
        "benchmarks/npca/bases_merge.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "spurlab merge-shards {input} --out {output} > {log} 2>&1"


rule npca_components:
    """NPFVs of the top-B components, the most confident kept, top images with Grad-CAM, and the
    neurons of Salient ImageNet beside them with their maps' statistics (docs/methods.md#npfv, #annotation); one class
    shard per job, npca_components_merge joins them, npca_annotations labels them.
    """
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        bases="results/npca/bases.h5",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        features=f"results/features/{SAL['model']}/{SAL['subset_set']}.h5",
        importance="results/salient/importance.h5",
    output:
        h5=temp("results/npca/shards/components.{shard}.h5"),
        table=temp("results/npca/shards/pairs.{shard}.parquet"),
        csv=temp("results/npca/shards/pairs.{shard}.csv"),
    log:
        "logs/npca/components.{shard}.log",
    benchmark:
        "benchmarks/npca/components.{shard}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        section={k: NPCA[k] for k in ("npfv", "top_images", "neurons_top")},
        salient={k: SAL[k] for k in ("subset", "annotation")},
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
        device=config["compute"]["device"],
        batch_size=config["compute"]["eval_batch_size"],
        shards=N_SHARDS,
    shell:
        "spurlab npca-components --config {params.configs} --model-dir {params.model_dir} "
        "--bases {input.bases} --imageset {input.imageset} --features {input.features} "
        "--importance {input.importance} --out {output.h5} --table {output.table} "
        "--shard {wildcards.shard}/{params.shards} "
        "--device {params.device} --batch-size {params.batch_size} --threads {threads} --quiet "
        "> {log} 2>&1"


rule npca_components_merge:
    """The class shards of npca_components in one file and one table, as one whole job would write."""
    input:
        h5=expand("results/npca/shards/components.{shard}.h5", shard=SHARDS),
        tables=expand("results/npca/shards/pairs.{shard}.parquet", shard=SHARDS),
    output:
        h5="results/npca/components.h5",
        table="results/npca/pair_stats.parquet",
        csv="results/npca/pair_stats.csv",
    log:
        "logs/npca/components_merge.log",
    benchmark:
        "benchmarks/npca/components_merge.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "spurlab merge-shards {input.h5} --out {output.h5} --tables {input.tables} "
        "--table-out {output.table} > {log} 2>&1"


rule npca_annotation_tasks:
    """Task pages (NPFV, top images, Grad-CAM heatmaps) and a manifest for human annotators (docs/methods.md#annotation)."""
    input:
        components="results/npca/components.h5",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
    output:
        index="results/npca/tasks/index.html",
        manifest="results/npca/tasks/manifest.csv",
    log:
        "logs/npca/annotation_tasks.log",
    benchmark:
        "benchmarks/npca/annotation_tasks.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "spurlab npca-tasks --components {input.components} --imageset {input.imageset} "
        "--out-dir results/npca/tasks > {log} 2>&1"


rule npca_annotations:
    """The labelled pair table: components by the human answers or a published list when given,
    otherwise (and neurons always) by the automatic annotator on object masks (docs/methods.md#annotation).
    """
    input:
        pairs="results/npca/pair_stats.parquet",
        human=NPCA["human_csv"] or [],
        published=NPCA["published_components"] or [],
    output:
        table="results/npca/pairs.parquet",
        csv="results/npca/pairs.csv",
    log:
        "logs/npca/annotations.log",
    benchmark:
        "benchmarks/npca/annotations.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section={k: NPCA[k] for k in ("human_csv", "published_components")},
        configs=CONFIGFILES,
        sources=lambda w, input: " ".join(
            f"--{k.replace('_', '-')} {input[k]}"
            for k in ("human", "published")
            if input[k]
        ),
    shell:
        "spurlab npca-annotate --config {params.configs} --pairs {input.pairs} {params.sources} "
        "--out {output.table} > {log} 2>&1"


if NPCA["human_csv"] and not Path(NPCA["human_csv"]).exists():

    rule await_npca_answers:
        """Stop with one line: the component task pages are ready, their answers file is not."""
        input:
            "results/npca/tasks/index.html",
        output:
            NPCA["human_csv"],
        log:
            "logs/npca/await_answers.log",
        benchmark:
            "benchmarks/npca/await_answers.tsv"
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=1,
        shell:
            "spurlab await-answers --tasks {input} --answers {output} "
            "--key npca.human_csv 2>&1 | tee {log}"


rule npca_retrieval:
    """Harmfulness check of the spurious components on a validation set, then out-of-class images
    ranked by a harmful component's alpha and predicted as the class."""
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        bases="results/npca/bases.h5",
        pairs="results/npca/pairs.parquet",
        imagesets=expand("results/datasets/{s}.h5", s=NPCA_POOL),
        features=expand(f"results/features/{NPCA_MODEL}/{{s}}.h5", s=NPCA_POOL),
        validation=expand("results/datasets/{s}.h5", s=NPCA_VALIDATION),
        validation_features=expand(
            f"results/features/{NPCA_MODEL}/{{s}}.h5", s=NPCA_VALIDATION
        ),
        published=NPCA["published_components"] or [],
    output:
        imageset="results/npca/retrieved.h5",
        table="results/npca/retrieval.parquet",
        csv="results/npca/retrieval.csv",
        harmful="results/npca/harmful.parquet",
        harmful_csv="results/npca/harmful.csv",
    log:
        "logs/npca/retrieval.log",
    benchmark:
        "benchmarks/npca/retrieval.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section={k: NPCA[k] for k in ("retrieval", "published_components")},
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
        pool=" ".join(NPCA_POOL),
        validation=lambda w, input: (
            f"--validation-imageset {input.validation} "
            f"--validation-features {input.validation_features}"
            if input.validation
            else ""
        ),
    shell:
        "spurlab npca-retrieval --config {params.configs} --model-dir {params.model_dir} "
        "--bases {input.bases} --pairs {input.pairs} --pool-sets {params.pool} "
        "--pool-imagesets {input.imagesets} --pool-features {input.features} {params.validation} "
        "--out-set {output.imageset} --out {output.table} --out-harmful {output.harmful} > {log} 2>&1"


rule npca_spufix:
    """SpuFix on the discovery model and transferred to every model: spurious score, accuracy."""
    input:
        weights=expand("results/models/{m}/model.safetensors", m=NPCA_SUITE),
        train=expand(f"results/features/{{m}}/{SAL['importance_set']}.h5", m=NPCA_SUITE),
        test=expand(f"results/features/{{m}}/{NPCA['test_set']}.h5", m=NPCA_SUITE),
        cue_only=expand(
            f"results/features/{{m}}/{NPCA['cue_only_set']}.h5", m=NPCA_SUITE
        ),
        pool=expand("results/features/{m}/{s}.h5", m=NPCA_SUITE, s=NPCA_POOL),
        cue_only_set=f"results/datasets/{NPCA['cue_only_set']}.h5",
        bases="results/npca/bases.h5",
        pairs="results/npca/pairs.parquet",
        retrieval="results/npca/retrieval.parquet",
        harmful="results/npca/harmful.parquet",
    output:
        table="results/npca/spufix.parquet",
        csv="results/npca/spufix.csv",
        models="results/npca/spufix_models.parquet",
        models_csv="results/npca/spufix_models.csv",
    log:
        "logs/npca/spufix.log",
    benchmark:
        "benchmarks/npca/spufix.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section={
            **{k: NPCA[k] for k in ("test_set", "cue_only_set")},
            "seed": config["seed"],
        },
        robust=NPCA_MODEL,
        configs=CONFIGFILES,
        models=" ".join(NPCA_SUITE),
        model_dirs=" ".join(f"results/models/{m}" for m in NPCA_SUITE),
        pool=" ".join(NPCA_POOL),
    shell:
        "spurlab npca-spufix --config {params.configs} --models {params.models} "
        "--model-dirs {params.model_dirs} --train-features {input.train} --test-features {input.test} "
        "--cue-only-features {input.cue_only} --pool-sets {params.pool} --pool-features {input.pool} "
        "--cue-only-set {input.cue_only_set} --bases {input.bases} --pairs {input.pairs} "
        "--retrieval {input.retrieval} --harmful {input.harmful} --out {output.table} --out-models {output.models} "
        "> {log} 2>&1"


rule npca_summary:
    """results/npca/summary.json: planted cues recovered, retrieval precision, SpuFix per model."""
    input:
        pairs="results/npca/pairs.parquet",
        retrieval="results/npca/retrieval.parquet",
        harmful="results/npca/harmful.parquet",
        spufix="results/npca/spufix.parquet",
        models="results/npca/spufix_models.parquet",
    output:
        "results/npca/summary.json",
    log:
        "logs/npca/summary.log",
    benchmark:
        "benchmarks/npca/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section={"seed": config["seed"]},
        configs=CONFIGFILES,
    shell:
        "spurlab npca-summary --config {params.configs} --pairs {input.pairs} "
        "--retrieval {input.retrieval} --harmful {input.harmful} "
        "--spufix {input.spufix} --spufix-models {input.models} --out {output} > {log} 2>&1"


rule npca:
    """Target: the Spurious ImageNet stage (issue #6)."""
    default_target: False
    input:
        "results/npca/summary.json",
        "results/npca/tasks/index.html",
