"""Spurious ImageNet (rules/npca.smk): class-wise neural PCA, NPFVs and their annotation,
harmfulness and cue-only retrieval, SpuFix, the summary."""

from __future__ import annotations

from ..errors import SpurlabError
from .args import aligned, check_model_dirs
from .table import COMPUTE, QUIET, SHARD, Command, path, section, text, threads


def npca(s, a) -> int:
    from ..discover.npca import run_npca

    info = run_npca(a.features, a.model_dir, a.out, settings=s, progress=not a.quiet, workers=a.threads, shard=a.shard)
    print(f"{a.out}: top-{s.components} neural PCA bases of {info['classes']} classes, {len(info['skipped'])} skipped")
    return 0


def npca_components(s, a) -> int:
    import torch

    from ..discover.npfv import run_npca_components

    torch.set_num_threads(a.threads)
    info = run_npca_components(a.model_dir, a.bases, imageset_path=a.imageset, features_path=a.features,
                               importance_path=a.importance, out=a.out, out_table=a.table, settings=s, device=a.device,
                               batch_size=a.batch_size, progress=not a.quiet, shard=a.shard)  # fmt: skip
    print(f"{a.out}: {info['components']} components ({info['spurious']} spurious), {info['neurons']} neurons")
    return 0


def npca_annotate(annotation: dict, a) -> int:
    from ..discover.npca_annotate import run_component_annotations

    info = run_component_annotations(a.pairs, a.out, annotation, a.human_csv, a.published)
    print(
        f"{a.out}: {info['spurious']} of {info['components']} components spurious, "
        f"{info['annotated']} annotated ({info['source']})"
    )
    return 0


def npca_tasks(_, a) -> int:
    from ..discover.npca_annotate import run_component_tasks

    n = run_component_tasks(a.components, a.imageset, a.out_dir)
    print(f"{a.out_dir}: {n} component task pages, index.html, manifest.csv")
    return 0


def npca_retrieval(s, a) -> int:
    from ..discover.retrieval import run_retrieval

    aligned(a, ("pool_sets", "pool_imagesets", "pool_features"))
    pool = {n: (str(i), str(f)) for n, i, f in zip(a.pool_sets, a.pool_imagesets, a.pool_features)}
    if (a.validation_imageset is None) != (a.validation_features is None):
        raise SpurlabError("--validation-imageset and --validation-features go together")
    validation = None if a.validation_imageset is None else (str(a.validation_imageset), str(a.validation_features))
    info = run_retrieval(a.model_dir, a.bases, a.pairs, pool, a.out_set, out_table=a.out, settings=s,
                         validation=validation, out_harmful=a.out_harmful)  # fmt: skip
    print(
        f"{a.out}: {info['harmful']} of {info['components']} spurious components harmful; "
        f"{info['images']} images for {info['classes']} classes, precision {info['precision']}"
    )
    return 0


def _spufix_models(a) -> dict:
    """{model: {dir, train, test, cue_only, <pool set>: feature cache}} from the aligned lists."""
    aligned(a, ("models", "model_dirs", "train_features", "test_features", "cue_only_features"))
    check_model_dirs(a.models, a.model_dirs, "--models")
    n_pool = len(a.pool_sets)
    if len(a.pool_features) != n_pool * len(a.models):
        raise SpurlabError(
            f"--pool-features: expected {n_pool} per model ({n_pool * len(a.models)}), got {len(a.pool_features)}"
        )
    models = {}
    for i, m in enumerate(a.models):
        e = {"dir": str(a.model_dirs[i]), "train": str(a.train_features[i]), "test": str(a.test_features[i]),
             "cue_only": str(a.cue_only_features[i])}  # fmt: skip
        e.update({s: str(a.pool_features[i * n_pool + j]) for j, s in enumerate(a.pool_sets)})
        models[m] = e
    return models


def npca_spufix(s, a) -> int:
    from ..mitigate.spufix import run_spufix

    info = run_spufix(_spufix_models(a), a.bases, a.pairs, a.cue_only_set, a.retrieval, harmful_path=a.harmful,
                      out_classes=a.out, out_models=a.out_models, settings=s)  # fmt: skip
    print(f"{a.out}: SpuFix on {info['models']} models, {info['spurious_classes']} classes with spurious components")
    return 0


def npca_summary(s, a) -> int:
    from ..measure.npca_summary import run_npca_summary

    summary = run_npca_summary(a.pairs, a.retrieval, harmful_path=a.harmful, classes_path=a.spufix,
                               models_path=a.spufix_models, out=a.out, settings=s)  # fmt: skip
    print(f"{a.out}: planted cues recovered {summary['planted_cues_recovered']}, "
          f"retrieval precision {summary['retrieval_precision']}")  # fmt: skip
    return 0


COMMANDS = (
    Command("npca", "discover", "class-wise neural PCA bases from cached train features (rule npca_bases)", npca, (
        path("--model-dir"),
        path("--features", "the model's feature cache of its training set"),
        path("--out", "bases (HDF5)"),
        threads(1, "classes fitted at once"),
        QUIET,
        SHARD,
    ), settings="spurlab.discover.npca:NpcaSettings"),
    Command("npca-components", "discover",
            "NPFVs, top images, Grad-CAMs and annotation of neural PCA components (rule npca_components)",
            npca_components, (
        path("--model-dir"),
        path("--bases"),
        path("--imageset", "images shown and annotated (salient.subset_set)"),
        path("--features", "the model's cache of that set"),
        path("--importance", "neuron importance, for the comparison"),
        path("--out", "components (HDF5)"),
        path("--table", "pair table with labels (.parquet)"),
        *COMPUTE,
        SHARD,
    ), settings="spurlab.discover.npfv:ComponentSettings"),
    Command("npca-tasks", "discover",
            "HTML task pages and a CSV manifest for neural PCA components (rule npca_annotation_tasks)", npca_tasks, (
        path("--components"),
        path("--imageset"),
        path("--out-dir"),
    )),
    Command("npca-annotate", "discover", "label neural PCA components: human answers, a published list, or the "
            "automatic labels (rule npca_annotations)", npca_annotate, (
        path("--pairs", "results/npca/pair_stats.parquet"),
        path("--human-csv", "answers to the component task pages (MTurk layout)", required=False),
        path("--published", "a published {class: [components]} .npy list", required=False),
        path("--out"),
    ), settings=section("salient.annotation")),
    Command("npca-retrieval", "discover", "cue-only images retrieved by spurious components (rule npca_retrieval)",
            npca_retrieval, (
        path("--model-dir"),
        path("--bases"),
        path("--pairs"),
        text("--pool-sets", many=True),
        path("--pool-imagesets", many=True),
        path("--pool-features", many=True),
        path("--out-set", "retrieved image set (HDF5)"),
        path("--out", "retrieval table (.parquet)"),
        path("--validation-imageset", "image set of the harmfulness check (npca.retrieval.validation_set)",
             required=False),
        path("--validation-features", "the discovery model's feature cache of it", required=False),
        path("--out-harmful", "per-component harmfulness table (.parquet)"),
    ), settings="spurlab.discover.retrieval:RetrievalSettings"),
    Command("npca-spufix", "mitigate", "spurious score and accuracy before/after SpuFix for every model (rule npca_spufix)",
            npca_spufix, (
        text("--models", "every model; the robust one (salient.model) is among them", many=True),
        path("--model-dirs", many=True),
        path("--train-features", many=True),
        path("--test-features", many=True),
        path("--cue-only-features", many=True),
        text("--pool-sets", many=True),
        path("--pool-features", "per model, one per pool set", many=True),
        path("--cue-only-set", "the cue_only image set (ground-truth cues)"),
        path("--bases"),
        path("--pairs"),
        path("--retrieval"),
        path("--harmful", "harmfulness table of npca-retrieval: the components SpuFix removes"),
        path("--out", "per-class table (.parquet)"),
        path("--out-models", "per-model table (.parquet)"),
    ), settings="spurlab.mitigate.spufix:SpuFixSettings"),
    Command("npca-summary", "measure", "write results/npca/summary.json (rule npca_summary)", npca_summary, (
        path("--pairs"),
        path("--retrieval"),
        path("--harmful"),
        path("--spufix"),
        path("--spufix-models"),
        path("--out"),
    ), settings="spurlab.measure.npca_summary:NpcaSummarySettings"),
)  # fmt: skip
