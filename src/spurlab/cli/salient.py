"""Salient ImageNet (rules/discover.smk, rules/measure.smk): importance, D(i, j), annotation and
its human round trip, masks, the noise test and its summary; lightweight discovery."""

from __future__ import annotations

from dataclasses import replace

from ..errors import SpurlabError
from .args import check_model_dirs
from .table import COMPUTE, SHARD, Command, arg, path, section, text, threads

SUBSETS_MODEL = (  # one model measured on the D(i, j) images with their soft masks (noise, corruptions)
    text("--model", "the model's name (a key of models)"),
    path("--model-dir"),
    path("--imageset"),
    path("--subsets"),
    path("--annotations"),
    path("--masks", "the consolidated masks (rule salient_masks)"),
)


def importance(s, a) -> int:
    from ..discover.importance import run_importance

    info = run_importance(a.features, a.model_dir, a.out, a.table, settings=s)
    print(f"{a.out}: top-{s.top_k} features of {info['classes']} classes ({s.grouping} grouping)")
    return 0


def salient_subsets(s, a) -> int:
    import torch

    from ..discover.subsets import run_subsets

    torch.set_num_threads(a.threads)
    info = run_subsets(a.model_dir, a.imageset, features_path=a.features, importance_path=a.importance, out=a.out,
                       settings=replace(s, batch_size=a.batch_size), device=a.device, progress=not a.quiet,
                       shard=a.shard)  # fmt: skip
    print(f"{a.out}: {info['pairs']} class-feature pairs, {info['members']} images")
    return 0


def annotation_tasks(_, a) -> int:
    from ..discover.annotate import run_annotation_tasks

    n = run_annotation_tasks(a.subsets, a.imageset, a.out_dir)
    print(f"{a.out_dir}: {n} task pages, index.html, manifest.csv")
    return 0


def await_answers(_, a) -> int:
    """The stop of the human round trip: the task pages exist, the answers file does not yet."""
    if not a.tasks.is_file():
        raise SpurlabError(f"{a.tasks}: no task pages; run the annotation tasks rule first")
    from ..discover.annotate import CSV_COLUMNS

    with open(a.tasks.with_name("manifest.csv"), encoding="utf-8") as manifest:
        n = max(0, sum(1 for _ in manifest) - 1)
    raise SpurlabError(f"human answers needed: annotate the {n} task pages of {a.tasks} and save the answers "
                       f"(MTurk layout: {', '.join(CSV_COLUMNS)}) as {a.answers} (config key {a.key}), "
                       "then run the same command again")  # fmt: skip


def annotate(annotation: dict, a) -> int:
    from ..discover.auto_annotate import run_annotations

    if a.source:
        annotation = dict(annotation, source=a.source)
    info = run_annotations(a.subsets, a.out, annotation, human_csv=a.human_csv)
    extra = ""
    if "coverage" in info:  # human answers: say what was left open and how much was answered
        extra = (f", {info['undecided']} undecided, {info['unannotated']} unannotated; "
                 f"{info['coverage']['coverage']:.0%} of pairs answered")  # fmt: skip
    print(f"{a.out}: {info['spurious']} of {info['pairs']} pairs spurious ({info['source']}{extra})")
    return 0


def import_annotations(_, a) -> int:
    from ..discover.annotate import run_import_annotations

    info = run_import_annotations(a.csv, a.out, a.subsets, a.summary, a.min_spurious_votes)
    line = (f"{a.out}: {info['spurious']} of {info['pairs']} pairs spurious, {info['core']} core, "
            f"{info['undecided']} undecided, {info['unannotated']} unannotated")  # fmt: skip
    if "coverage" in info:
        cov = info["coverage"]
        line += (f"; {cov['answered_and_exported']} of {cov['exported']} exported pairs answered, "
                 f"{cov['answered_not_exported']} answered pairs not exported")  # fmt: skip
    print(line)
    return 0


def salient_masks(_, a) -> int:
    from ..discover.subsets_file import run_consolidated_masks

    counts = run_consolidated_masks(a.subsets, a.annotations, a.out)
    print(f"{a.out}: {counts['spurious']} spurious and {counts['core']} core masks")
    return 0


def noise(s, a) -> int:
    import torch

    from ..measure.noise import run_noise

    torch.set_num_threads(a.threads)
    check_model_dirs([a.model], [a.model_dir])
    info = run_noise(a.model_dir, a.model, imageset_path=a.imageset, subsets_path=a.subsets,
                     annotations_path=a.annotations, masks_path=a.masks, out=a.out, settings=s, device=a.device,
                     batch_size=a.batch_size, progress=not a.quiet, shard=a.shard)  # fmt: skip
    print(f"{a.out}: {info['rows']} rows")
    return 0


def salient_summary(s, a) -> int:
    from ..measure.salient_summary import run_salient_summary

    summary = run_salient_summary(a.imageset, a.subsets, annotations_path=a.annotations, noise_paths=a.noise,
                                  out=a.out, figure=a.figure, grid_figure=a.grid, features_path=a.features,
                                  model_dir=a.model_dir, settings=s)  # fmt: skip
    print(f"{a.out}: {summary['n_spurious']} of {summary['n_pairs']} pairs spurious")
    return 0


def fit_head(s, a) -> int:
    import torch

    from ..discover.linear_head import run_fit_head

    torch.set_num_threads(a.threads)
    info = run_fit_head(a.model_dir, a.train_features, a.test_features, a.out_dir, settings=s)
    print(f"{a.out_dir}: linear head for {info['classes']} classes, train acc {info['train_acc']:.3f}, "
          f"test acc {info['test_acc']:.3f}")  # fmt: skip
    return 0


def lightweight_summary(seed, a) -> int:
    from ..discover.auto_annotate import lightweight_summary
    from ..io import write_json

    summary = lightweight_summary(a.subsets, a.annotations, a.model_dir, a.imageset, a.features, seed=seed or 0)
    write_json(a.out, summary)
    print(f"{a.out}: precision {summary['auto_annotator_precision']}, recall {summary['auto_annotator_recall']}, "
          f"planted cues recovered {summary['planted_cues_recovered']}")  # fmt: skip
    return 0


TABLE = "(.parquet; a .csv twin is written)"

COMMANDS = (
    Command("importance", "discover", "neural feature importance and top-k features per class (rule importance)",
            importance, (
        path("--model-dir", "the discovery model (its head W)"),
        path("--features", "that model's feature cache on salient.importance_set"),
        path("--out", "importance HDF5 (IV, counts, top-k)"),
        path("--table", f"top-k table {TABLE}"),
    ), settings="spurlab.discover.importance:ImportanceSettings"),
    Command("salient-subsets", "discover", "D(i,j) subsets with NAM soft masks and feature attacks (rule salient_subsets)",
            salient_subsets, (
        path("--model-dir"),
        path("--imageset", "the image set of salient.subset_set"),
        path("--features", "the model's feature cache on that set"),
        path("--importance"),
        path("--out"),
        *COMPUTE,
        SHARD,
    ), settings="spurlab.discover.subsets:SubsetSettings"),
    Command("annotation-tasks", "discover", "HTML task pages and a CSV manifest for human annotation (rule annotation_tasks)",
            annotation_tasks, (path("--subsets"), path("--imageset"), path("--out-dir"))),
    Command("await-answers", "discover",
            "stop with one line naming the answers file the task pages need (rules await_*_answers)", await_answers, (
        path("--tasks", "the task pages' index.html"),
        path("--answers", "the answers file to provide"),
        text("--key", "the config key naming the answers file"),
    )),
    Command("annotate", "discover",
            "the annotations table: automatic, or human answers in the MTurk CSV layout (rule annotations)", annotate, (
        path("--subsets"),
        path("--human-csv", "answers in the Salient ImageNet MTurk layout (source: human)", required=False),
        arg("--source", choices=["auto", "human"], help="override salient.annotation.source"),
        path("--out", f"annotations table {TABLE}"),
    ), settings=section("salient.annotation")),
    # a tool on its own (no config): published or partial answers, outside the workflow
    Command("import-annotations", "discover", "annotations table from MTurk-layout answers, published or partial",
            import_annotations, (
        path("--csv", "answers in the Salient ImageNet MTurk layout (, ; or tab)"),
        path("--out", f"annotations table {TABLE}"),
        path("--subsets", "salient subsets file: its pairs are the exported ones (coverage)", required=False),
        path("--summary", "JSON: label counts, with --subsets the coverage", required=False),
        arg("--min-spurious-votes", type=int, default=3, help="k: spurious or core needs k answers (paper 3)"),
    )),
    Command("salient-masks", "discover", "consolidated core and spurious masks per image, eq. 2 (rule salient_masks)",
            salient_masks, (path("--subsets"), path("--annotations"), path("--out"))),
    Command("lightweight-summary", "discover", "score the new task's automatic annotations against planted truth",
            lightweight_summary, (
        path("--subsets"),
        path("--annotations"),
        path("--model-dir", "the model with the fitted head"),
        path("--imageset", "the new task's image set the subsets were built on"),
        path("--features", "the model's feature cache of it (planted truth, the head's test predictions)"),
        path("--out"),
    ), settings=section("seed"), config_required=False,
       config_help="the config whose `seed` seeds the accuracy's bootstrap interval (default 0)"),
    Command("fit-head", "models", "fit a linear head on frozen features of a new task (rule lightweight_head)", fit_head, (
        path("--model-dir", "the frozen backbone (salient.model)"),
        path("--train-features", "its feature cache of the new task's train set"),
        path("--test-features", "its feature cache of the new task's test set"),
        path("--out-dir", "the new model directory"),
        threads(),
    ), settings="spurlab.discover.linear_head:HeadSettings"),
    Command("noise", "measure", "core and spurious accuracy of one model under masked noise (rule noise)", noise, (
        *SUBSETS_MODEL,
        path("--out", f"noise table {TABLE}"),
        *COMPUTE,
        SHARD,
    ), settings="spurlab.measure.noise:NoiseSettings"),
    Command("salient-summary", "measure", "write results/salient/summary.json and its figure (rule salient_summary)",
            salient_summary, (
        path("--subsets"),
        path("--annotations"),
        path("--noise", "one noise table per model", many=True),
        path("--out"),
        path("--imageset", "the image set of salient.subset_set"),
        path("--figure", "PNG: core/spurious accuracy vs sigma per model"),
        path("--grid", "PNG: top features per class as NAM heatmaps"),
        path("--model-dir", "the discovery model (salient.model)"),
        path("--features", "its feature cache of the image set (planted truth)"),
    ), settings="spurlab.measure.salient_summary:SalientSummarySettings"),
)  # fmt: skip
