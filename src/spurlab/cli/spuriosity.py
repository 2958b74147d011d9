"""Spuriosity Rankings (rules/measure.smk, rules/mitigate.smk): rankings, spurious gaps,
targeted corruptions, label-noise candidates, the summary, low-spuriosity head tuning."""

from __future__ import annotations

from .args import aligned, check_model_dirs
from .salient import SUBSETS_MODEL, TABLE
from .table import COMPUTE, Command, path, text, threads


def spuriosity_rankings(s, a) -> int:
    from ..measure.spuriosity import run_rankings

    aligned(a, ("sets", "features", "imagesets"))
    info = run_rankings(a.annotations, a.model_dir, features=dict(zip(a.sets, map(str, a.features))),
                        imagesets=dict(zip(a.sets, map(str, a.imagesets))), out=a.out, settings=s)  # fmt: skip
    print(
        f"{a.out}: {info['rows']} images of {len(info['sets'])} sets ranked; {info['classes']} classes with spurious features"
    )
    return 0


def spurious_gaps(s, a) -> int:
    from ..measure.spuriosity import run_gaps

    aligned(a, ("models", "model_dirs", "features"))
    check_model_dirs(a.models, a.model_dirs, "--models")
    models = {m: (str(d), str(f)) for m, d, f in zip(a.models, a.model_dirs, a.features)}
    info = run_gaps(a.rankings, models, out_gaps=a.out, out_models=a.out_models, out_correlations=a.out_correlations,
                    settings=s)  # fmt: skip
    print(f"{a.out}: gaps of {info['models']} models on {info['classes']} classes; "
          f"mean pairwise r {info['gap_correlation_mean']:.3f}")  # fmt: skip
    return 0


def corruptions(s, a) -> int:
    import torch

    from ..measure.corruptions import run_corruptions

    torch.set_num_threads(a.threads)
    check_model_dirs([a.model], [a.model_dir])
    info = run_corruptions(a.model_dir, a.model, imageset_path=a.imageset, subsets_path=a.subsets,
                           annotations_path=a.annotations, masks_path=a.masks, out=a.out, settings=s,
                           device=a.device, batch_size=a.batch_size, progress=not a.quiet)  # fmt: skip
    print(f"{a.out}: {info['rows']} rows")
    return 0


def label_noise(s, a) -> int:
    import torch

    from ..measure.label_noise import run_label_noise

    torch.set_num_threads(a.threads)
    aligned(a, ("models", "model_dirs"))
    check_model_dirs(a.models, a.model_dirs, "--models")
    info = run_label_noise(a.rankings, a.gaps, a.annotations, a.imageset, a.discovery_dir,
                           models=dict(zip(a.models, map(str, a.model_dirs))), out=a.out, figure=a.figure,
                           settings=s, device=a.device)  # fmt: skip
    print(f"{a.out}: {info['candidates']} candidates of negative-gap classes {info['classes']}")
    return 0


def spuriosity_summary(s, a) -> int:
    from ..measure.spuriosity_summary import run_spuriosity_summary

    summary = run_spuriosity_summary(a.imageset, a.rankings, gaps_path=a.gaps, models_path=a.gap_models,
                                     correlations_path=a.gap_correlations, corruption_paths=a.corruptions,
                                     tuning_paths=a.tuning, label_noise_path=a.label_noise,
                                     models_summary_path=a.models_summary, out=a.out, gaps_figure=a.gaps_figure,
                                     tuning_figure=a.tuning_figure, lightweight_path=a.lightweight, settings=s)  # fmt: skip
    auc = summary["spuriosity_auc_mean"]
    print(f"{a.out}: spuriosity AUC (cue classes) {'n/a' if auc is None else f'{auc:.3f}'}, "
          f"{len(summary['negative_gap_classes'])} negative-gap classes")  # fmt: skip
    return 0


def head_tuning(s, a) -> int:
    import torch

    from ..mitigate.head_tuning import run_head_tuning

    torch.set_num_threads(a.threads)
    check_model_dirs([a.model], [a.model_dir])
    info = run_head_tuning(a.model_dir, a.model, train_features=a.train_features, val_features=a.val_features,
                           test_features=a.heldout_features, rankings_path=a.rankings, out=a.out, settings=s)  # fmt: skip
    for method, e in info.items():
        print(f"{a.model} {method}: gap {e['gap_before']:.3f} -> {e['gap_after']:.3f}, "
              f"acc {e['acc_before']:.3f} -> {e['acc_after']:.3f}")  # fmt: skip
    return 0


COMMANDS = (
    Command("spuriosity-rankings", "measure",
            "spuriosity and within-class rank of every image (rule spuriosity_rankings)", spuriosity_rankings, (
        path("--annotations", "the annotations table (rule annotations)"),
        path("--model-dir", "the discovery model (salient.model)"),
        text("--sets", "names of the ranked sets", many=True),
        path("--features", "the discovery model's feature cache per set", many=True),
        path("--imagesets", "the image set per set (ground-truth cues)", many=True),
        path("--out", f"rankings table {TABLE}"),
    ), settings="spurlab.measure.spuriosity:RankingSettings"),
    Command("spurious-gaps", "measure",
            "class-wise spurious gaps, effective robustness, gap correlations (rule spurious_gaps)", spurious_gaps, (
        path("--rankings"),
        text("--models", "model names", many=True),
        path("--model-dirs", many=True),
        path("--features", "each model's feature cache of the gap set", many=True),
        path("--out", "per (model, class) gaps (.parquet)"),
        path("--out-models", "per model: accuracies, mean gap, effective robustness"),
        path("--out-correlations", "per model pair: Pearson r of class-wise gaps"),
    ), settings="spurlab.measure.spuriosity:GapSettings"),
    Command("corruptions", "measure",
            "accuracy change under gray / blur / patch-rotate of each pair's regions (rule corruptions)", corruptions, (
        *SUBSETS_MODEL,
        path("--out", f"corruption table {TABLE}"),
        *COMPUTE,
    ), settings="spurlab.measure.corruptions:CorruptionSettings"),
    Command("label-noise", "measure",
            "highest-spuriosity images of negative-gap classes and their core crops (rule label_noise)", label_noise, (
        path("--rankings"),
        path("--gaps"),
        path("--annotations"),
        path("--imageset", "the ranked set the candidates come from (spuriosity.stats_set)"),
        path("--discovery-dir", "the model whose core NAMs crop (salient.model)"),
        text("--models", "models evaluated on originals and crops", many=True),
        path("--model-dirs", many=True),
        path("--out", "candidates table (.parquet)"),
        path("--figure", "PNG: candidates with their crop boxes, and the crops"),
        *COMPUTE,
    ), settings="spurlab.measure.label_noise:LabelNoiseSettings"),
    Command("spuriosity-summary", "measure",
            "write results/spuriosity/summary.json and its figures (rule spuriosity_summary)", spuriosity_summary, (
        path("--imageset", "the gap set's image set (class names, planted cues)"),
        path("--rankings"),
        path("--gaps"),
        path("--gap-models"),
        path("--gap-correlations"),
        path("--corruptions", "one corruption table per model", many=True),
        path("--tuning", "one head-tuning table per model", many=True),
        path("--label-noise"),
        path("--models-summary", "results/models/summary.json (counterfactual gaps), if any", required=False),
        path("--lightweight", "the lightweight-discovery summary, if any", required=False),
        path("--out"),
        path("--gaps-figure"),
        path("--tuning-figure"),
    ), settings="spurlab.measure.spuriosity_summary:SpuriositySummarySettings"),
    Command("head-tuning", "mitigate",
            "low-spuriosity head tuning against random and misclassified baselines (rule head_tuning)", head_tuning, (
        text("--model", "the model's name (a key of models)"),
        path("--model-dir"),
        path("--rankings"),
        path("--train-features", "the model's cache of spuriosity.stats_set (tuning data)"),
        path("--val-features", "its cache of spuriosity.gap_set (early stopping)"),
        path("--heldout-features", "its cache of spuriosity.heldout_set, if any", required=False),
        path("--out", f"tuning table {TABLE}"),
        threads(),
    ), settings="spurlab.mitigate.head_tuning:TuningSettings"),
)  # fmt: skip
