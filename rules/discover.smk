# Stage 4 (ARCHITECTURE): discovery on the robust model - Salient ImageNet (Singla & Feizi 2022).

SAL = config["salient"]
SAL_MODEL = f"results/models/{SAL['model']}"


rule importance:
    """Neural feature importance IV and the top-k features per class (SPEC 4.1)."""
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        features=f"results/features/{SAL['model']}/{SAL['importance_set']}.h5",
    output:
        h5="results/salient/importance.h5",
        table="results/salient/importance.parquet",
        csv="results/salient/importance.csv",
    log:
        "logs/salient/importance.log",
    benchmark:
        "benchmarks/salient/importance.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section={k: SAL[k] for k in ("grouping", "top_k")},
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
    shell:
        "spurlab importance --config {params.configs} --model-dir {params.model_dir} "
        "--features {input.features} --out {output.h5} --table {output.table} > {log} 2>&1"


rule salient_subsets:
    """D(i,j) per class and top feature: NAM soft masks, feature attacks, mask localisation (SPEC 4.2-4.4)."""
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        features=f"results/features/{SAL['model']}/{SAL['subset_set']}.h5",
        importance="results/salient/importance.h5",
    output:
        "results/salient/subsets.h5",
    log:
        "logs/salient/subsets.log",
    benchmark:
        "benchmarks/salient/subsets.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        section={k: SAL[k] for k in ("subset", "attack")},
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
        device=config["compute"]["device"],
        batch_size=config["compute"]["eval_batch_size"],
    shell:
        "spurlab salient-subsets --config {params.configs} --model-dir {params.model_dir} "
        "--imageset {input.imageset} --features {input.features} --importance {input.importance} "
        "--out {output} --device {params.device} --batch-size {params.batch_size} "
        "--threads {threads} --quiet > {log} 2>&1"


rule annotation_tasks:
    """One HTML task page per class-feature pair and a CSV manifest, for human annotators (SPEC 4.7)."""
    input:
        subsets="results/salient/subsets.h5",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
    output:
        index="results/salient/tasks/index.html",
        manifest="results/salient/tasks/manifest.csv",
    log:
        "logs/salient/annotation_tasks.log",
    benchmark:
        "benchmarks/salient/annotation_tasks.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "spurlab annotation-tasks --subsets {input.subsets} --imageset {input.imageset} "
        "--out-dir results/salient/tasks > {log} 2>&1"


rule annotations:
    """The annotations table: automatic (NAM mass vs object mask) or human MTurk answers (SPEC 4.7)."""
    input:
        subsets="results/salient/subsets.h5",
        human=SAL["annotation"]["human_csv"] or [],
    output:
        table="results/salient/annotations.parquet",
        csv="results/salient/annotations.csv",
    log:
        "logs/salient/annotations.log",
    benchmark:
        "benchmarks/salient/annotations.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section=SAL["annotation"],
        configs=CONFIGFILES,
        human=(
            f"--human-csv {SAL['annotation']['human_csv']}"
            if SAL["annotation"]["source"] == "human"
            else ""
        ),
    shell:
        "spurlab annotate --config {params.configs} --subsets {input.subsets} {params.human} "
        "--out {output.table} > {log} 2>&1"


rule salient_masks:
    """Per image, the max over its spurious (core) features' NAMs: consolidated masks (eq. 2)."""
    input:
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
    output:
        "results/salient/masks.h5",
    log:
        "logs/salient/masks.log",
    benchmark:
        "benchmarks/salient/masks.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "spurlab salient-masks --subsets {input.subsets} --annotations {input.annotations} "
        "--out {output} > {log} 2>&1"
