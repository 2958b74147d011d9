# Stage 5 (ARCHITECTURE): measurement - core/spurious accuracy under masked noise (SPEC 5.1).


wildcard_constraints:
    noise_model=one_of(NOISE_MODELS),


rule noise:
    """Core and spurious accuracy of one model: Gaussian noise inside spurious / core soft masks."""
    input:
        weights="results/models/{noise_model}/model.safetensors",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
        masks="results/salient/masks.h5",
    output:
        table="results/salient/noise/{noise_model}.parquet",
        csv="results/salient/noise/{noise_model}.csv",
    log:
        "logs/salient/noise/{noise_model}.log",
    benchmark:
        "benchmarks/salient/noise/{noise_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section=SAL["noise"],
        configs=CONFIGFILES,
        device=config["compute"]["device"],
        batch_size=config["compute"]["eval_batch_size"],
    shell:
        "spurlab noise --config {params.configs} --model {wildcards.noise_model} "
        "--model-dir results/models/{wildcards.noise_model} --imageset {input.imageset} "
        "--subsets {input.subsets} --annotations {input.annotations} --masks {input.masks} "
        "--out {output.table} "
        "--device {params.device} --batch-size {params.batch_size} --threads {threads} --quiet "
        "> {log} 2>&1"


rule salient_summary:
    """results/salient/summary.json: annotator precision/recall, cues recovered, core/spurious accuracy."""
    input:
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
        noise=expand("results/salient/noise/{m}.parquet", m=NOISE_MODELS),
    output:
        summary="results/salient/summary.json",
        figure=report(
            "results/salient/noise.png",
            caption="../workflow/report/salient_noise.rst",
            category="Salient ImageNet",
        ),
        grid=report(
            "results/salient/features.png",
            caption="../workflow/report/salient_features.rst",
            category="Salient ImageNet",
        ),
    log:
        "logs/salient/summary.log",
    benchmark:
        "benchmarks/salient/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        configs=CONFIGFILES,
    shell:
        "spurlab salient-summary --config {params.configs} --imageset {input.imageset} "
        "--subsets {input.subsets} --annotations {input.annotations} --noise {input.noise} "
        "--out {output.summary} --figure {output.figure} --grid {output.grid} > {log} 2>&1"


rule salient:
    """Target: Salient ImageNet on the configured data (discovery, annotation, noise, summary)."""
    input:
        "results/salient/summary.json",
        "results/salient/tasks/index.html",
