# Stages 2-3 (docs/architecture.md): train or import the model suite, cache its features.


wildcard_constraints:
    model=one_of(MODELS + LW_MODEL),


rule train:
    """Train one model of the suite: ERM, or L2-PGD adversarial when `robust` is set (docs/methods.md#models)."""
    input:
        train=lambda w: f"results/datasets/{config['models'][w.model]['train_set']}.h5",
        val=lambda w: f"results/datasets/{config['models'][w.model].get('val_set', 'val')}.h5",
        init=lambda w: config["models"][w.model].get("init_checkpoint") or [],
    output:
        weights="results/models/{model}/model.safetensors",
        meta="results/models/{model}/meta.json",
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    wildcard_constraints:
        model=one_of(trained_models(config)),
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        section=lambda w: model_section(config, w.model),
        configs=CONFIGFILES,
        out_dir=lambda w: f"results/models/{w.model}",
    shell:
        "spurlab train --config {params.configs} --model {wildcards.model} "
        "--train-set {input.train} --val-set {input.val} --out-dir {params.out_dir} "
        "--threads {threads} > {log} 2>&1"


rule import_checkpoint:
    """Bring a local checkpoint (plain state dict or Madry robustness layout) into our format."""
    input:
        lambda w: config["models"][w.model]["checkpoint"]["path"],
    output:
        weights="results/models/{model}/model.safetensors",
        meta="results/models/{model}/meta.json",
    log:
        "logs/import_checkpoint/{model}.log",
    benchmark:
        "benchmarks/import_checkpoint/{model}.tsv"
    wildcard_constraints:
        model=one_of(imported_models(config)),
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        section=lambda w: model_section(config, w.model),
        configs=CONFIGFILES,
        out_dir=lambda w: f"results/models/{w.model}",
    shell:
        "spurlab import-checkpoint --config {params.configs} --model {wildcards.model} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule features:
    """Cache penultimate features, logits and predictions of one model on one image set (docs/methods.md#feature-cache)."""
    input:
        weights="results/models/{model}/model.safetensors",
        meta="results/models/{model}/meta.json",
        imageset="results/datasets/{set}.h5",
    output:
        "results/features/{model}/{set}.h5",
    log:
        "logs/features/{model}/{set}.log",
    benchmark:
        "benchmarks/features/{model}/{set}.tsv"
    conda:
        "../envs/torch.yaml"
    # inference is byte-identical at any thread count, and two 1-thread jobs at once finish the
    # suite's short, import-bound caching jobs 1.8x sooner than one 2-thread job (bench/caching_jobs.py)
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model_dir=lambda w: f"results/models/{w.model}",
        batch_size=config["compute"]["eval_batch_size"],
        dtype=config["features"]["dtype"],
        block=config["features"]["block_rows"],
        device=config["compute"]["device"],
    shell:
        "spurlab features --model-dir {params.model_dir} --imageset {input.imageset} "
        "--out {output} --batch-size {params.batch_size} --dtype {params.dtype} "
        "--block-rows {params.block} --device {params.device} --threads {threads} > {log} 2>&1"


rule models_summary:
    """Per model: test accuracy, robustness, training time, counterfactual gap per class."""
    input:
        meta=expand("results/models/{model}/meta.json", model=MODELS),
        test=expand("results/features/{model}/test.h5", model=MODELS),
        counterfactual=expand(
            "results/features/{model}/counterfactual.h5", model=MODELS
        ),
        cf_set="results/datasets/counterfactual.h5",
    output:
        "results/models/summary.json",
    log:
        "logs/models_summary.log",
    benchmark:
        "benchmarks/models_summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        configs=CONFIGFILES,
    shell:
        "spurlab models-summary --config {params.configs} --models-dir results/models "
        "--features-dir results/features --counterfactual-set {input.cf_set} "
        "--out {output} > {log} 2>&1"


rule models:
    """Target: train/import the suite, cache its features on the configured sets, and on the
    benchmark summarise them (the summary's counterfactual gaps need its planted cues).
    """
    input:
        ["results/models/summary.json"] if benchmark_on(config) else [],
        expand(
            "results/features/{model}/{set}.h5",
            model=MODELS,
            set=config["features"]["sets"],
        ),
