# Stage 5 (docs/architecture.md): measurement - core/spurious accuracy under masked noise (docs/methods.md#noise-corruption).


wildcard_constraints:
    noise_model=one_of(NOISE_MODELS),


rule noise:
    """Core and spurious accuracy of one model: Gaussian noise inside spurious / core soft masks,
    for one class shard (compute.class_shards); noise_merge joins the shards."""
    input:
        weights="results/models/{noise_model}/model.safetensors",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
        masks="results/salient/masks.h5",
    output:
        table=temp("results/salient/noise/shards/{noise_model}.{shard}.parquet"),
        csv=temp("results/salient/noise/shards/{noise_model}.{shard}.csv"),
    log:
        "logs/salient/noise/{noise_model}.{shard}.log",
    benchmark:
        "benchmarks/salient/noise/{noise_model}.{shard}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # the keys the noise table is made from (spurlab.measure.noise.NoiseSettings)
        section={k: SAL["noise"][k] for k in ("seed", "sigmas", "l2_match_sigmas")},
        configs=CONFIGFILES,
        device=config["compute"]["device"],
        batch_size=config["compute"]["eval_batch_size"],
        shards=N_SHARDS,
    shell:
        "spurlab noise --config {params.configs} --model {wildcards.noise_model} "
        "--model-dir results/models/{wildcards.noise_model} --imageset {input.imageset} "
        "--subsets {input.subsets} --annotations {input.annotations} --masks {input.masks} "
        "--out {output.table} --shard {wildcards.shard}/{params.shards} "
        "--device {params.device} --batch-size {params.batch_size} --threads {threads} --quiet "
        "> {log} 2>&1"


rule noise_merge:
    """The class shards of one model's noise table in one table, as one whole job would write it."""
    input:
        expand(
            "results/salient/noise/shards/{{noise_model}}.{shard}.parquet",
            shard=SHARDS,
        ),
    output:
        table="results/salient/noise/{noise_model}.parquet",
        csv="results/salient/noise/{noise_model}.csv",
    log:
        "logs/salient/noise/{noise_model}_merge.log",
    benchmark:
        "benchmarks/salient/noise/{noise_model}_merge.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "spurlab merge-shards {input} --out {output.table} > {log} 2>&1"


rule salient_summary:
    """results/salient/summary.json: annotator precision/recall, cues recovered, core/spurious accuracy."""
    input:
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        features=f"results/features/{SAL['model']}/{SAL['subset_set']}.h5",
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
        # what the summary reads: salient.noise (the sigmas it reports), the automatic annotator and
        # the seed of the bootstrap intervals
        section={**{k: SAL[k] for k in ("noise", "annotation")}, "seed": config["seed"]},
        configs=CONFIGFILES,
        model_dir=lambda w: SAL_MODEL,
    shell:
        "spurlab salient-summary --config {params.configs} --imageset {input.imageset} "
        "--subsets {input.subsets} --annotations {input.annotations} --noise {input.noise} "
        "--model-dir {params.model_dir} --features {input.features} "
        "--out {output.summary} --figure {output.figure} --grid {output.grid} > {log} 2>&1"


rule salient:
    """Target: Salient ImageNet on the configured data (discovery, annotation, noise, summary)."""
    input:
        "results/salient/summary.json",
        "results/salient/tasks/index.html",


# Spuriosity Rankings (Moayeri et al. 2023): rankings from the discovery model and the
# annotations, then every model's spurious gaps, corruption sensitivities and label-noise crops.

SPU = config["spuriosity"]


wildcard_constraints:
    spu_model=one_of(SPU_MODELS),


rule spuriosity_rankings:
    """Spuriosity of every image of the ranked sets and its rank within its class (docs/methods.md#spuriosity-rankings)."""
    input:
        weights=f"{SAL_MODEL}/model.safetensors",
        annotations="results/salient/annotations.parquet",
        features=expand(
            "results/features/{model}/{set}.h5", model=SAL["model"], set=SPU["sets"]
        ),
        imagesets=expand("results/datasets/{set}.h5", set=SPU["sets"]),
    output:
        table="results/spuriosity/rankings.parquet",
        csv="results/spuriosity/rankings.csv",
    log:
        "logs/spuriosity/rankings.log",
    benchmark:
        "benchmarks/spuriosity/rankings.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section={"stats_set": SPU["stats_set"]},
        configs=CONFIGFILES,
        sets=" ".join(SPU["sets"]),
        model_dir=lambda w: SAL_MODEL,
    shell:
        "spurlab spuriosity-rankings --config {params.configs} --annotations {input.annotations} "
        "--model-dir {params.model_dir} --sets {params.sets} --features {input.features} "
        "--imagesets {input.imagesets} --out {output.table} > {log} 2>&1"


rule spurious_gaps:
    """Every model's class-wise spurious gap, effective robustness, pairwise gap correlations."""
    input:
        rankings="results/spuriosity/rankings.parquet",
        weights=expand("results/models/{m}/model.safetensors", m=SPU_MODELS),
        features=expand(
            "results/features/{m}/{set}.h5", m=SPU_MODELS, set=SPU["gap_set"]
        ),
    output:
        gaps="results/spuriosity/gaps.parquet",
        models="results/spuriosity/gap_models.parquet",
        correlations="results/spuriosity/gap_correlations.parquet",
    log:
        "logs/spuriosity/gaps.log",
    benchmark:
        "benchmarks/spuriosity/gaps.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section={**{k: SPU[k] for k in ("gap_set", "k")}, "seed": config["seed"]},
        configs=CONFIGFILES,
        models=" ".join(SPU_MODELS),
        model_dirs=lambda w: " ".join(f"results/models/{m}" for m in SPU_MODELS),
    shell:
        "spurlab spurious-gaps --config {params.configs} --rankings {input.rankings} "
        "--models {params.models} --model-dirs {params.model_dirs} --features {input.features} "
        "--out {output.gaps} --out-models {output.models} "
        "--out-correlations {output.correlations} > {log} 2>&1"


rule corruptions:
    """One model's accuracy change under gray / blur / patch-rotate of each pair's region (docs/methods.md#targeted-corruptions)."""
    input:
        weights="results/models/{spu_model}/model.safetensors",
        imageset=f"results/datasets/{SAL['subset_set']}.h5",
        subsets="results/salient/subsets.h5",
        annotations="results/salient/annotations.parquet",
        masks="results/salient/masks.h5",
    output:
        table="results/spuriosity/corruptions/{spu_model}.parquet",
        csv="results/spuriosity/corruptions/{spu_model}.csv",
    log:
        "logs/spuriosity/corruptions/{spu_model}.log",
    benchmark:
        "benchmarks/spuriosity/corruptions/{spu_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        section=SPU["corruptions"],
        configs=CONFIGFILES,
        device=config["compute"]["device"],
        batch_size=config["compute"]["eval_batch_size"],
    shell:
        "spurlab corruptions --config {params.configs} --model {wildcards.spu_model} "
        "--model-dir results/models/{wildcards.spu_model} --imageset {input.imageset} "
        "--subsets {input.subsets} --annotations {input.annotations} --masks {input.masks} "
        "--out {output.table} --device {params.device} --batch-size {params.batch_size} "
        "--threads {threads} --quiet > {log} 2>&1"


rule label_noise:
    """Highest-spuriosity training images of negative-gap classes and their core crops (docs/methods.md#core-cropping)."""
    input:
        rankings="results/spuriosity/rankings.parquet",
        gaps="results/spuriosity/gaps.parquet",
        annotations="results/salient/annotations.parquet",
        imageset=f"results/datasets/{SPU['stats_set']}.h5",
        weights=expand(
            "results/models/{m}/model.safetensors", m=[SAL["model"]] + SPU_MODELS
        ),
    output:
        table="results/spuriosity/label_noise.parquet",
        csv="results/spuriosity/label_noise.csv",
        figure=report(
            "results/spuriosity/label_noise.png",
            caption="../workflow/report/spuriosity_label_noise.rst",
            category="Spuriosity Rankings",
        ),
    log:
        "logs/spuriosity/label_noise.log",
    benchmark:
        "benchmarks/spuriosity/label_noise.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section={**SPU["crop"], "stats_set": SPU["stats_set"]},
        configs=CONFIGFILES,
        discovery=lambda w: SAL_MODEL,
        models=" ".join(SPU_MODELS),
        model_dirs=lambda w: " ".join(f"results/models/{m}" for m in SPU_MODELS),
        device=config["compute"]["device"],
    shell:
        "spurlab label-noise --config {params.configs} --rankings {input.rankings} --gaps {input.gaps} "
        "--annotations {input.annotations} --imageset {input.imageset} "
        "--discovery-dir {params.discovery} --models {params.models} --model-dirs {params.model_dirs} "
        "--out {output.table} --figure {output.figure} --device {params.device} "
        "--threads {threads} > {log} 2>&1"


rule spuriosity_summary:
    """results/spuriosity/summary.json: AUC vs planted cues, gaps, correlations, corruptions, tuning."""
    input:
        imageset=f"results/datasets/{SPU['gap_set']}.h5",
        rankings="results/spuriosity/rankings.parquet",
        gaps="results/spuriosity/gaps.parquet",
        gap_models="results/spuriosity/gap_models.parquet",
        gap_correlations="results/spuriosity/gap_correlations.parquet",
        corruptions=expand("results/spuriosity/corruptions/{m}.parquet", m=SPU_MODELS),
        tuning=expand("results/spuriosity/tuning/{m}.parquet", m=SPU_MODELS),
        label_noise="results/spuriosity/label_noise.parquet",
        # counterfactual gaps exist for the generated benchmark only
        models_summary=(
            "results/models/summary.json"
            if SPU["gap_set"] in generated_sets(config)
            else []
        ),
        lightweight="results/lightweight/summary.json" if LW_MODEL else [],
    output:
        summary="results/spuriosity/summary.json",
        gaps=report(
            "results/spuriosity/gaps.png",
            caption="../workflow/report/spuriosity_gaps.rst",
            category="Spuriosity Rankings",
        ),
        tuning=report(
            "results/spuriosity/tuning.png",
            caption="../workflow/report/spuriosity_tuning.rst",
            category="Spuriosity Rankings",
        ),
    log:
        "logs/spuriosity/summary.log",
    benchmark:
        "benchmarks/spuriosity/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        optional=lambda w, input: " ".join(
            f"--{k.replace('_', '-')} {input[k]}"
            for k in ("models_summary", "lightweight")
            if input[k]
        ),
        section={
            "model": SAL["model"],
            "gap_target": SPU["tuning"]["gap_target"],
            "seed": config["seed"],
        },
        configs=CONFIGFILES,
    shell:
        "spurlab spuriosity-summary --config {params.configs} --imageset {input.imageset} "
        "--rankings {input.rankings} --gaps {input.gaps} --gap-models {input.gap_models} "
        "--gap-correlations {input.gap_correlations} --corruptions {input.corruptions} "
        "--tuning {input.tuning} --label-noise {input.label_noise} {params.optional} "
        "--out {output.summary} --gaps-figure {output.gaps} --tuning-figure {output.tuning} "
        "> {log} 2>&1"


rule spuriosity:
    """Target: Spuriosity Rankings (rankings, gaps, corruptions, label noise, head tuning, lightweight discovery; docs/methods.md)."""
    input:
        "results/spuriosity/summary.json",
