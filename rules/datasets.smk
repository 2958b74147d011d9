# Stage 1 (docs/architecture.md): config -> image sets, contact sheets, summary.
from spurlab.config import (
    bam_source_inputs,
    folder_options,
    folder_sets,
    generated_sets,
)


wildcard_constraints:
    set="|".join(SETS),


rule image_set:
    """Render one image set of the planted-cue benchmark, BAM or contamination
    (docs/methods.md#planted-cue-benchmark, #bam-compositing, #spurious-contamination).
    """
    input:
        # bam.source coco: the COCO JSON, its image folder and the scene folder (else nothing)
        lambda w: bam_source_inputs(config, w.set),
    output:
        "results/datasets/{set}.h5",
    log:
        "logs/image_set/{set}.log",
    benchmark:
        "benchmarks/image_set/{set}.tsv"
    wildcard_constraints:
        set=one_of(generated_sets(config)),
    conda:
        "../envs/data.yaml"
    # one thread: most sets take about a second, so two run at once; the bytes are the same at
    # any thread count (make-set --threads)
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        # the slice of config the set is made from: a change reruns exactly the affected sets
        section=lambda w: section_for_set(config, w.set),
        configs=CONFIGFILES,
    shell:
        "spurlab make-set --config {params.configs} --set {wildcards.set} "
        "--out {output} --threads {threads} --quiet > {log} 2>&1"


rule index_folder:
    """Index an ImageNet-style folder (`folders:` in the config) as an image set (docs/methods.md#real-data-adapters).
    Reads every file once (hash and decode check); rerun with -R index_folder after the folder changes.
    """
    output:
        "results/datasets/{set}.h5",
    log:
        "logs/index_folder/{set}.log",
    benchmark:
        "benchmarks/index_folder/{set}.tsv"
    wildcard_constraints:
        set=one_of(folder_sets(config)),
    conda:
        "../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        section=lambda w: section_for_set(config, w.set),
        root=lambda w: config["folders"][w.set]["root"],
        image_size=lambda w: config["folders"][w.set]["image_size"],
        extra=lambda w: folder_options(config, w.set),
    shell:
        "spurlab index-folder --root {params.root:q} --out {output} "
        "--image-size {params.image_size} --set-name {wildcards.set} {params.extra} "
        "--threads {threads} > {log} 2>&1"


rule contact_sheet:
    """A grid of a set's first images with object and cue masks outlined."""
    input:
        "results/datasets/{set}.h5",
    output:
        report(
            "results/datasets/{set}.png",
            caption="../workflow/report/contact_sheet.rst",
            category="Datasets",
            labels={"set": "{set}"},
        ),
    log:
        "logs/contact_sheet/{set}.log",
    benchmark:
        "benchmarks/contact_sheet/{set}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    shell:
        "spurlab contact-sheet {input} --out {output} > {log} 2>&1"


rule datasets_summary:
    """Verify every set's content hash; per-set sizes, hashes, cue rates; generator throughput."""
    input:
        expand("results/datasets/{set}.h5", set=SETS),
    output:
        "results/datasets/summary.json",
    log:
        "logs/datasets_summary.log",
    benchmark:
        "benchmarks/datasets_summary.tsv"
    conda:
        "../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        configs=CONFIGFILES,
    shell:
        "spurlab datasets-summary --config {params.configs} --sets {input} "
        "--out {output} --threads {threads} > {log} 2>&1"


rule datasets:
    """Target: every image set, its contact sheet and the summary."""
    input:
        "results/datasets/summary.json",
        expand("results/datasets/{set}.png", set=SETS),
