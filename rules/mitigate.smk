# Stage 6 (docs/architecture.md): mitigation on cached features - low-spuriosity head tuning (docs/methods.md#low-spuriosity-head-tuning).


rule head_tuning:
    """Tune one model's head on low-spuriosity / random / misclassified images (Moayeri et al. 4.3)."""
    input:
        weights="results/models/{spu_model}/model.safetensors",
        rankings="results/spuriosity/rankings.parquet",
        train=f"results/features/{{spu_model}}/{SPU['stats_set']}.h5",
        val=f"results/features/{{spu_model}}/{SPU['gap_set']}.h5",
        heldout=(
            f"results/features/{{spu_model}}/{SPU['heldout_set']}.h5"
            if SPU["heldout_set"]
            else []
        ),
    output:
        table="results/spuriosity/tuning/{spu_model}.parquet",
        csv="results/spuriosity/tuning/{spu_model}.csv",
    log:
        "logs/spuriosity/tuning/{spu_model}.log",
    benchmark:
        "benchmarks/spuriosity/tuning/{spu_model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section=SPU["tuning"],
        configs=CONFIGFILES,
        heldout=lambda w, input: (
            f"--heldout-features {input.heldout}" if input.heldout else ""
        ),
    shell:
        "spurlab head-tuning --config {params.configs} --model {wildcards.spu_model} "
        "--model-dir results/models/{wildcards.spu_model} --rankings {input.rankings} "
        "--train-features {input.train} --val-features {input.val} {params.heldout} "
        "--out {output.table} --threads {threads} > {log} 2>&1"
