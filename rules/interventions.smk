# Interventional checks of explanations (docs/methods.md#interventional-checks-of-explanations):
# each attribution method of the bam and posthoc stages scored on images re-rendered without the
# object or the cue (deletion, preservation; FunnyBirds), the suite's prediction flips on test images
# re-rendered on another scene (ImageNet-9's mixed-rand), and the agreement of the correlational and
# interventional rankings of the methods. One job per family. Target `interventions`.
IV = config["interventions"]
IV_BG = benchmark_on(config)
IV_BAM_SETS = ["bam_os_test", "bam_0s_test", "bam_og_test"]
IV_BAM_MODELS = ["f_o", "f_s"]
IV_SUMMARY_INPUTS = {
    **(
        {
            "bam": "results/interventions/bam.parquet",
            "bam_contrast": "results/bam/attributions/contrast.parquet",
            "bam_summary": "results/bam/summary.json",
        }
        if BAM_ON
        else {}
    ),
    **(
        {
            "posthoc": "results/interventions/posthoc.parquet",
            "posthoc_summary": "results/posthoc/summary.json",
        }
        if PH_ON
        else {}
    ),
    **({"background": "results/interventions/background.parquet"} if IV_BG else {}),
}
IV_PH_ATTRIBUTIONS = (
    expand("results/posthoc/attributions/{s}.parquet", s=PH_SIGNALS) if PH_ON else []
)
IV_EXAMPLES = ["results/figures/interventions_examples.png"] if PH_ON else []


if BAM_ON:

    rule interventions_bam:
        """BAM family: f_o and f_s on X_os test images, the object removed (X_0s) and the scene
        removed (X_og); every method's part shares, deletion and preservation."""
        input:
            weights=expand("results/bam/models/{m}/model.safetensors", m=IV_BAM_MODELS),
            sets=set_paths(IV_BAM_SETS),
        output:
            table="results/interventions/bam.parquet",
            csv="results/interventions/bam.csv",
        log:
            "logs/interventions/bam.log",
        benchmark:
            "benchmarks/interventions/bam.tsv"
        conda:
            "../envs/torch.yaml"
        # one thread: this small-image attribution work keeps one core busy at two threads as well,
        # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
        threads: 1
        resources:
            mem_mb=3000,
            runtime=10,
        params:
            section={
                "seed": IV["seed"],
                "n_images": IV["n_images"]["bam"],
                "methods": IV["methods"]["bam"],
                "stage": {
                    k: config["bam"]["benchmark"][k]
                    for k in ["methods", "attribution", "normaliser"]
                },
            },
            configs=CONFIGFILES,
            models=" ".join(IV_BAM_MODELS),
            model_dirs=model_dirs_arg("bam", IV_BAM_MODELS),
            set_names=" ".join(IV_BAM_SETS),
        shell:
            "spurlab interventions-bam --config {params.configs} --models {params.models} "
            "--model-dirs {params.model_dirs} --set-names {params.set_names} "
            "--imagesets {input.sets} --out {output.table} --threads {threads} > {log} 2>&1"


if PH_ON:

    rule interventions_posthoc:
        """Post hoc family: the normal and each spurious model on contaminated test images, the
        signal removed (clean twin) and the object removed (re-rendered); example panels.
        """
        input:
            weights=PH_WEIGHTS,
            sets=set_paths(PH_TEST_SETS),
        output:
            table="results/interventions/posthoc.parquet",
            csv="results/interventions/posthoc.csv",
            figure=report(
                "results/figures/interventions_examples.png",
                caption="../workflow/report/interventions_examples.rst",
                category="Figures",
                subcategory="interventions",
            ),
            svg="results/figures/interventions_examples.svg",
        log:
            "logs/interventions/posthoc.log",
        benchmark:
            "benchmarks/interventions/posthoc.tsv"
        conda:
            "../envs/torch.yaml"
        # one thread: this small-image attribution work keeps one core busy at two threads as well,
        # and gives the same bytes at one (docs/performance.md#threads-per-job); two such jobs run at once
        threads: 1
        resources:
            mem_mb=3000,
            runtime=10,
        params:
            section={
                "seed": IV["seed"],
                "n_images": IV["n_images"]["posthoc"],
                "methods": IV["methods"]["posthoc"],
                "stage": {k: config["posthoc"][k] for k in ["methods", "attribution"]},
            },
            configs=CONFIGFILES,
            models=" ".join(PH_MODELS),
            model_dirs=model_dirs_arg("posthoc", PH_MODELS),
            set_names=" ".join(PH_TEST_SETS),
        shell:
            "spurlab interventions-posthoc --config {params.configs} --models {params.models} "
            "--model-dirs {params.model_dirs} --set-names {params.set_names} "
            "--imagesets {input.sets} --out {output.table} --figure {output.figure} "
            "--svg {output.svg} --threads {threads} > {log} 2>&1"


if IV_BG:

    rule interventions_background:
        """Background swap: every model of the suite on test images re-rendered on another
        scene (ImageNet-9's mixed-rand); prediction flips."""
        input:
            weights=expand("results/models/{m}/model.safetensors", m=MODELS),
            imageset="results/datasets/test.h5",
        output:
            table="results/interventions/background.parquet",
            csv="results/interventions/background.csv",
        log:
            "logs/interventions/background.log",
        benchmark:
            "benchmarks/interventions/background.tsv"
        conda:
            "../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=3000,
            runtime=10,
        params:
            section={"seed": IV["seed"], "n_images": IV["n_images"]["background"]},
            configs=CONFIGFILES,
            models=" ".join(MODELS),
            model_dirs=" ".join(f"results/models/{m}" for m in MODELS),
        shell:
            "spurlab interventions-background --config {params.configs} --models {params.models} "
            "--model-dirs {params.model_dirs} --imageset {input.imageset} --out {output.table} "
            "--threads {threads} > {log} 2>&1"


rule interventions_summary:
    """results/interventions/summary.json: deletion / preservation per family and method, the
    planted order per model, background-swap flip rates, ranking agreement with MCS and K-SSD;
    the figure."""
    input:
        **IV_SUMMARY_INPUTS,
        posthoc_attributions=IV_PH_ATTRIBUTIONS,
    output:
        summary="results/interventions/summary.json",
        figure=report(
            "results/figures/interventions.png",
            caption="../workflow/report/interventions.rst",
            category="Figures",
            subcategory="interventions",
        ),
        svg="results/figures/interventions.svg",
    log:
        "logs/interventions/summary.log",
    benchmark:
        "benchmarks/interventions/summary.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        section={
            "tie_tolerance": IV["tie_tolerance"],
            "methods": IV["methods"],
            "seed": IV["seed"],
        },
        configs=CONFIGFILES,
        inputs=" ".join(
            f"--{k.replace('_', '-')} {p}" for k, p in IV_SUMMARY_INPUTS.items()
        ),
        attributions=(
            f"--posthoc-attributions {' '.join(IV_PH_ATTRIBUTIONS)}"
            if IV_PH_ATTRIBUTIONS
            else ""
        ),
        examples=f"--examples {' '.join(IV_EXAMPLES)}" if IV_EXAMPLES else "",
    shell:
        "spurlab interventions-summary --config {params.configs} {params.inputs} "
        "{params.attributions} {params.examples} --out {output.summary} "
        "--figure {output.figure} --svg {output.svg} > {log} 2>&1"


rule interventions:
    """Target: interventional checks of the bam and posthoc explanations and the background swap."""
    input:
        "results/interventions/summary.json",
        "results/figures/interventions.png",
        IV_EXAMPLES,
