# Stage 4 (docs/architecture.md): discovery on the robust model - Salient ImageNet (Singla & Feizi 2022).
from pathlib import Path

SAL = config["salient"]
SAL_MODEL = f"results/models/{SAL['model']}"


rule importance:
    """Neural feature importance IV and the top-k features per class (docs/methods.md#neural-feature-importance)."""
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
    """D(i,j) per class and top feature: NAM soft masks, feature attacks, mask localisation
    (docs/methods.md#neural-activation-maps, #feature-attack, #class-feature-subsets),
    for one class shard (compute.class_shards); salient_subsets_merge joins the shards.
    """
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        features=f"results/features/{SAL['model']}/{SAL['subset_set']}.h5",
        importance="results/salient/importance.h5",
    output:
        temp("results/salient/shards/subsets.{shard}.h5"),
    log:
        "logs/salient/subsets.{shard}.log",
    benchmark:
        "benchmarks/salient/subsets.{shard}.tsv"
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
        shards=N_SHARDS,
    shell:
        "spurlab salient-subsets --config {params.configs} --model-dir {params.model_dir} "
        "--imageset {input.imageset} --features {input.features} --importance {input.importance} "
        "--out {output} --shard {wildcards.shard}/{params.shards} --device {params.device} "
        "--batch-size {params.batch_size} --threads {threads} --quiet > {log} 2>&1"


rule salient_subsets_merge:
    """The class shards of salient_subsets in one file, as one whole job would write it."""
    input:
        expand("results/salient/shards/subsets.{shard}.h5", shard=SHARDS),
    output:
        "results/salient/subsets.h5",
    log:
        "logs/salient/subsets_merge.log",
    benchmark:
        "benchmarks/salient/subsets_merge.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "spurlab merge-shards {input} --out {output} > {log} 2>&1"


rule annotation_tasks:
    """One HTML task page per class-feature pair and a CSV manifest, for human annotators (docs/methods.md#annotation)."""
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
    """The annotations table: automatic (NAM mass vs object mask) or human MTurk answers (docs/methods.md#annotation)."""
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


# The human round trip: with no answers file yet, the file is this rule's output, so every target
# that needs the annotations builds the task pages first and then stops naming the file to provide.
if (
    SAL["annotation"]["source"] == "human"
    and not Path(SAL["annotation"]["human_csv"]).exists()
):

    rule await_salient_answers:
        """Stop with one line: the task pages are ready, their answers file is not (docs/methods.md#annotation)."""
        input:
            "results/salient/tasks/index.html",
        output:
            SAL["annotation"]["human_csv"],
        log:
            "logs/salient/await_answers.log",
        benchmark:
            "benchmarks/salient/await_answers.tsv"
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=1,
        shell:
            "spurlab await-answers --tasks {input} --answers {output} "
            "--key salient.annotation.human_csv 2>&1 | tee {log}"


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


# Lightweight discovery on new data (Moayeri et al. 2023 sec. 3.2; docs/methods.md#lightweight-discovery): a head fit on the
# discovery model's frozen features of a second task, then the same discovery rules on it.
if LW_MODEL:
    LW = f"results/models/{LW_MODEL[0]}"
    LW_FEATURES = f"results/features/{LW_MODEL[0]}"

    rule lightweight_head:
        """A linear head on the frozen discovery model's features of the second task (docs/methods.md#lightweight-discovery)."""
        input:
            weights=f"{SAL_MODEL}/model.safetensors",
            train=f"results/features/{SAL['model']}/lightweight_train.h5",
            test=f"results/features/{SAL['model']}/lightweight_test.h5",
        output:
            weights=f"{LW}/model.safetensors",
            meta=f"{LW}/meta.json",
        log:
            "logs/lightweight/head.log",
        benchmark:
            "benchmarks/lightweight/head.tsv"
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            section=config["lightweight"],
            configs=CONFIGFILES,
            model_dir=lambda w: SAL_MODEL,
            out_dir=lambda w: LW,
        shell:
            "spurlab fit-head --config {params.configs} --model-dir {params.model_dir} "
            "--train-features {input.train} --test-features {input.test} "
            "--out-dir {params.out_dir} --threads {threads} > {log} 2>&1"

    use rule importance as lightweight_importance with:
        input:
            weights=f"{LW}/model.safetensors",
            features=f"{LW_FEATURES}/lightweight_train.h5",
        output:
            h5="results/lightweight/importance.h5",
            table="results/lightweight/importance.parquet",
            csv="results/lightweight/importance.csv",
        log:
            "logs/lightweight/importance.log",
        benchmark:
            "benchmarks/lightweight/importance.tsv"
        params:
            section={k: SAL[k] for k in ("grouping", "top_k")},
            configs=CONFIGFILES,
            model_dir=lambda w: LW,

    use rule salient_subsets as lightweight_subsets with:
        input:
            weights=f"{LW}/model.safetensors",
            imageset="results/datasets/lightweight_test.h5",
            features=f"{LW_FEATURES}/lightweight_test.h5",
            importance="results/lightweight/importance.h5",
        output:
            temp("results/lightweight/shards/subsets.{shard}.h5"),
        log:
            "logs/lightweight/subsets.{shard}.log",
        benchmark:
            "benchmarks/lightweight/subsets.{shard}.tsv"
        params:
            section={k: SAL[k] for k in ("subset", "attack")},
            configs=CONFIGFILES,
            model_dir=lambda w: LW,
            device=config["compute"]["device"],
            batch_size=config["compute"]["eval_batch_size"],
            shards=N_SHARDS,

    use rule salient_subsets_merge as lightweight_subsets_merge with:
        input:
            expand("results/lightweight/shards/subsets.{shard}.h5", shard=SHARDS),
        output:
            "results/lightweight/subsets.h5",
        log:
            "logs/lightweight/subsets_merge.log",
        benchmark:
            "benchmarks/lightweight/subsets_merge.tsv"

    use rule annotations as lightweight_annotations with:
        input:
            subsets="results/lightweight/subsets.h5",
        output:
            table="results/lightweight/annotations.parquet",
            csv="results/lightweight/annotations.csv",
        log:
            "logs/lightweight/annotations.log",
        benchmark:
            "benchmarks/lightweight/annotations.tsv"
        params:
            section=SAL["annotation"],
            configs=CONFIGFILES,
            human="--source auto",

    rule lightweight_summary:
        """The second task's automatic annotations scored against its planted cues."""
        input:
            subsets="results/lightweight/subsets.h5",
            annotations="results/lightweight/annotations.parquet",
            meta=f"{LW}/meta.json",
            imageset="results/datasets/lightweight_test.h5",
            features=f"{LW_FEATURES}/lightweight_test.h5",
        output:
            "results/lightweight/summary.json",
        log:
            "logs/lightweight/summary.log",
        benchmark:
            "benchmarks/lightweight/summary.tsv"
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            model_dir=lambda w: LW,
            section={"seed": config["seed"]},
            configs=CONFIGFILES,
        shell:
            "spurlab lightweight-summary --config {params.configs} "
            "--subsets {input.subsets} --annotations {input.annotations} "
            "--model-dir {params.model_dir} --imageset {input.imageset} --features {input.features} "
            "--out {output} > {log} 2>&1"
