"""Command-line interface: one subcommand per pipeline rule, plus tools to look at outputs.

Every Snakemake rule calls one of these with explicit paths. Bad input exits with status 2 and a
single line `spurlab: error: <what and where>`; nothing is left under the output path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import SpurlabError
from .args import check_model_dirs, finite_float
from .posthoc import add_posthoc_parsers


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors (missing option, bad value) as the usual one line
    `spurlab: error: ...` and exit status 2; `-h` still shows the usage."""

    def error(self, message: str):
        sub = self.prog.partition(" ")[2]
        where = f"{sub}: " if sub else ""
        hint = f" (see {self.prog} -h)"
        self.exit(2, f"spurlab: error: {where}{' '.join(message.split())}{hint}\n")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", "-c", nargs="+", required=True, metavar="YAML",
        help="config file(s); later files override earlier ones key by key, as in Snakemake",
    )  # fmt: skip


def _subsets_model_args(p: argparse.ArgumentParser) -> None:
    """One model measured on the D(i, j) images with their soft masks (noise, corruptions)."""
    p.add_argument("--model", required=True, help="the model's name (a key of models)")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path)
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--masks", required=True, type=Path, help="the consolidated masks (rule salient_masks)")


def _compute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_validate_config(args) -> int:
    from ..config import check_paths, load_config

    cfg = load_config(args.config)
    if args.check_paths:
        check_paths(cfg)
    found = ", and the folders and files it names exist" if args.check_paths else ""
    print(f"ok: {' + '.join(args.config)} is a valid spurlab config{found}")
    return 0


def cmd_list_sets(args) -> int:
    from ..config import load_config, set_names

    print("\n".join(set_names(load_config(args.config))))
    return 0


def cmd_make_set(args) -> int:
    from tqdm import tqdm

    from ..config import load_config
    from ..data.imagesets import write_imageset
    from ..data.sets import build_plan

    cfg = load_config(args.config)
    if args.set in (cfg.get("folders") or {}):
        raise SpurlabError(f"image set '{args.set}': a folder set (folders.{args.set}); build it with spurlab index-folder")
    plan, attrs = build_plan(cfg, args.set)
    t = time.perf_counter()
    with tqdm(total=plan.n, desc=args.set, unit="img", mininterval=2.0, disable=args.quiet) as bar:
        sha = write_imageset(args.out, plan.n, plan.chunks(args.threads), attrs, progress=bar)
    dt = time.perf_counter() - t
    print(f"{args.out}: {plan.n} images in {dt:.1f}s ({plan.n / dt:.0f} img/s incl. writing), sha256 {sha}")
    return 0


def cmd_index_folder(args) -> int:
    from ..data.folders import index_image_folder

    names = None
    if args.class_names:
        if not args.class_names.is_file():
            raise SpurlabError(f"{args.class_names}: class names file not found")
        names = [line.strip() for line in args.class_names.read_text().splitlines() if line.strip()]
    t = time.perf_counter()
    info = index_image_folder(args.root, args.out, args.image_size, class_names=names, set_name=args.set_name,
                              skip_bad_images=args.skip_bad_images, threads=args.threads, synsets=args.synsets,
                              val_labels=args.val_labels)  # fmt: skip
    for rel in info["skipped"]:
        print(f"skipped (not a readable image): {rel} ({info['skipped_reasons'][rel]})")
    print(f"{args.out}: {info['n_images']} images of {info['n_classes']} classes indexed in "
          f"{time.perf_counter() - t:.1f}s, {len(info['skipped'])} skipped, sha256 {info['sha256']}")  # fmt: skip
    return 0


def cmd_datasets_summary(args) -> int:
    from ..config import load_config
    from ..data.summary import datasets_summary
    from ..io import write_json

    cfg = load_config(args.config)
    summary = datasets_summary(cfg, args.sets, threads=args.threads)
    write_json(args.out, summary)
    speed = f", generator {summary['images_per_second']:.0f} img/s" if "images_per_second" in summary else ""
    print(f"{args.out}: {len(summary['sets'])} sets{speed}")
    return 0


def cmd_contact_sheet(args) -> int:
    from ..data.imagesets import open_imageset
    from ..report.figures import contact_sheet

    with open_imageset(args.imageset) as s:
        contact_sheet(s, args.out, n=args.n)
    print(f"{args.out}: contact sheet of {args.imageset}")
    return 0


def cmd_inspect(args) -> int:
    from ..inspect import describe

    print(describe(args.file, verify=args.verify))
    return 0


def cmd_train(args) -> int:
    from ..config import load_config
    from ..train import train_model

    meta = train_model(load_config(args.config), args.model, train_set=args.train_set, val_set=args.val_set,
                       out_dir=args.out_dir, threads=args.threads)
    m = meta["metrics"]
    print(f"{args.out_dir}: {args.model} val acc {m['val_acc']:.3f}" + (f", adv {m['val_adv_acc']:.3f}" if meta["robust"] else ""))
    return 0


def _arch_args(text: str | None) -> dict | None:
    """--arch-args: a JSON or YAML mapping of the architecture's keyword arguments, checked as
    models.<name>.arch_args is in a config."""
    from ..config import check_arch_args, parse_yaml

    if text is None:
        return None
    value = parse_yaml(text, "--arch-args")
    check_arch_args(value, "--arch-args")
    return value


def _read_text(path, what: str) -> str:
    """A UTF-8 text file's content; a missing or undecodable file is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: {what} not found")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpurlabError(f"{path}: {what} is not UTF-8 text (byte offset {e.start})") from None


def cmd_import_checkpoint(args) -> int:
    from ..config import load_config
    from ..models import save_model
    from ..models.checkpoints import import_checkpoint

    names_file = None
    arch_args = _arch_args(args.arch_args)
    if args.config:
        if arch_args is not None:
            raise SpurlabError("--arch-args: not used with --config (an imported model of the config loads into its "
                               "architecture with the default arguments; models.<name>.arch_args is refused there too)")
        cfg = load_config(args.config)
        entry = cfg["models"].get(args.model)
        if entry is None or "checkpoint" not in entry:
            raise SpurlabError(f"models.{args.model}: not an imported model (no checkpoint) in this config")
        ck = entry["checkpoint"]
        path, layout, arch, n_classes = ck["path"], ck["layout"], entry["arch"], ck["num_classes"]
        names_file, input_size = ck.get("class_names"), ck.get("input_size", 224)
    elif args.checkpoint is None:
        raise SpurlabError("import-checkpoint: give --checkpoint FILE, or --config with models.<model>.checkpoint")
    else:
        path, layout, arch, n_classes, names_file = args.checkpoint, args.layout, args.arch, args.num_classes, args.class_names
        input_size = args.input_size
    class_names = [str(i) for i in range(n_classes)]
    if names_file:
        class_names = [line.strip() for line in _read_text(names_file, "class names file").splitlines() if line.strip()]
        if len(class_names) != n_classes:
            raise SpurlabError(f"{names_file}: {len(class_names)} class names for num_classes {n_classes}")
    model, info = import_checkpoint(path, arch=arch, num_classes=n_classes, kind=layout, input_size=input_size,
                                    arch_args=arch_args)  # fmt: skip
    meta = {"name": args.model, "robust": info["layout"] == "madry", "imported": info, "class_names": class_names}
    save_model(model, args.out_dir, meta)
    print(f"{args.out_dir}: imported {path} ({info['layout']}, sha256 {info['sha256'][:12]})")
    return 0


def cmd_features(args) -> int:
    import torch

    from ..data.imagesets import open_imageset
    from ..device import pick_device, prepare_model
    from ..features import cache_features, model_checkpoint_sha256
    from ..models import load_model

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, meta = load_model(args.model_dir, device="cpu")
    model = prepare_model(model, device)
    with open_imageset(args.imageset) as s:
        if s.image_size != model.input_size:
            raise SpurlabError(f"{args.imageset}: images are {s.image_size}px, model {args.model_dir} expects {model.input_size}px")
        cache_features(model, meta.get("name", args.model_dir.name), model_sha256=model_checkpoint_sha256(args.model_dir),
                       imageset=s, out=args.out,
                       device=device, batch_size=args.batch_size, block=args.block_rows, dtype=args.dtype,
                       progress=not args.quiet)  # fmt: skip
    print(f"{args.out}: features of {args.model_dir} on {args.imageset}")
    return 0


def cmd_models_summary(args) -> int:
    from ..config import load_config
    from ..io import write_json
    from ..models_summary import models_summary

    cfg = load_config(args.config)
    summary = models_summary(cfg, args.models_dir, args.features_dir, args.counterfactual_set)
    write_json(args.out, summary)
    print(f"{args.out}: cue-class mean gap {summary['cue_class_mean_gap']:.3f}, control {summary['control_class_mean_gap']:.3f}")
    return 0


def _salient(args) -> dict:
    from ..config import load_config

    return load_config(args.config)["salient"]


def cmd_importance(args) -> int:
    from ..discover.importance import run_importance

    sal = _salient(args)
    info = run_importance(args.features, args.model_dir, out_h5=args.out, out_table=args.table, grouping=sal["grouping"],
                          top_k=sal["top_k"])
    print(f"{args.out}: top-{sal['top_k']} features of {info['classes']} classes ({sal['grouping']} grouping)")
    return 0


def cmd_salient_subsets(args) -> int:
    import torch

    from ..discover.subsets import SubsetSettings, run_subsets

    torch.set_num_threads(args.threads)
    sal = _salient(args)
    settings = SubsetSettings(**sal["subset"], attack=sal["attack"], batch_size=args.batch_size)
    info = run_subsets(args.model_dir, args.imageset, features_path=args.features, importance_path=args.importance,
                       out=args.out, settings=settings,
                       device=args.device, progress=not args.quiet, shard=args.shard)  # fmt: skip
    print(f"{args.out}: {info['pairs']} class-feature pairs, {info['members']} images")
    return 0


def cmd_annotate(args) -> int:
    from ..discover.auto_annotate import run_annotations

    ann = _salient(args)["annotation"]
    if args.source:
        ann = dict(ann, source=args.source)
    info = run_annotations(args.subsets, args.out, ann, human_csv=args.human_csv)
    extra = ""
    if "coverage" in info:  # human answers: say what was left open and how much was answered
        extra = (f", {info['undecided']} undecided, {info['unannotated']} unannotated; "
                 f"{info['coverage']['coverage']:.0%} of pairs answered")  # fmt: skip
    print(f"{args.out}: {info['spurious']} of {info['pairs']} pairs spurious ({info['source']}{extra})")
    return 0


def cmd_import_annotations(args) -> int:
    from ..discover.annotate import run_import_annotations

    info = run_import_annotations(args.csv, args.out, args.subsets, args.summary, args.min_spurious_votes)
    line = (f"{args.out}: {info['spurious']} of {info['pairs']} pairs spurious, {info['core']} core, "
            f"{info['undecided']} undecided, {info['unannotated']} unannotated")  # fmt: skip
    if "coverage" in info:
        cov = info["coverage"]
        line += (f"; {cov['answered_and_exported']} of {cov['exported']} exported pairs answered, "
                 f"{cov['answered_not_exported']} answered pairs not exported")  # fmt: skip
    print(line)
    return 0


def cmd_annotation_tasks(args) -> int:
    from ..discover.annotate import run_annotation_tasks

    n = run_annotation_tasks(args.subsets, args.imageset, args.out_dir)
    print(f"{args.out_dir}: {n} task pages, index.html, manifest.csv")
    return 0


def cmd_await_answers(args) -> int:
    """The stop of the human round trip: the task pages exist, the answers file does not yet."""
    if not args.tasks.is_file():
        raise SpurlabError(f"{args.tasks}: no task pages; run the annotation tasks rule first")
    from ..discover.annotate import CSV_COLUMNS

    with open(args.tasks.with_name("manifest.csv"), encoding="utf-8") as manifest:
        n = max(0, sum(1 for _ in manifest) - 1)
    raise SpurlabError(f"human answers needed: annotate the {n} task pages of {args.tasks} and save the answers "
                       f"(MTurk layout: {', '.join(CSV_COLUMNS)}) as {args.answers} (config key {args.key}), "
                       "then run the same command again")  # fmt: skip


def cmd_salient_masks(args) -> int:
    from ..discover.subsets import run_consolidated_masks

    counts = run_consolidated_masks(args.subsets, args.annotations, args.out)
    print(f"{args.out}: {counts['spurious']} spurious and {counts['core']} core masks")
    return 0


def cmd_noise(args) -> int:
    import torch

    from ..measure.noise import run_noise

    torch.set_num_threads(args.threads)
    noise = _salient(args)["noise"]
    check_model_dirs([args.model], [args.model_dir])
    info = run_noise(args.model_dir, args.model, imageset_path=args.imageset, subsets_path=args.subsets,
                     annotations_path=args.annotations, masks_path=args.masks, out=args.out,
                     seed=noise["seed"], sigmas=noise["sigmas"], l2_sigmas=noise["l2_match_sigmas"], device=args.device,
                     batch_size=args.batch_size,
                     progress=not args.quiet, shard=args.shard)  # fmt: skip
    print(f"{args.out}: {info['rows']} rows")
    return 0


def cmd_salient_summary(args) -> int:
    from ..config import load_config
    from ..measure.salient_summary import run_salient_summary

    summary = run_salient_summary(load_config(args.config), args.imageset, subsets_path=args.subsets,
                                  annotations_path=args.annotations, noise_paths=args.noise,
                                  out=args.out, figure=args.figure, grid_figure=args.grid, features_path=args.features,
                                  model_dir=args.model_dir)  # fmt: skip
    print(f"{args.out}: {summary['n_spurious']} of {summary['n_pairs']} pairs spurious")
    return 0


def _aligned(args, names: tuple[str, ...]) -> None:
    """Lists given side by side (one entry per set or model) must have one length."""
    lengths = {n: len(getattr(args, n)) for n in names}
    if len(set(lengths.values())) != 1:
        raise SpurlabError(f"--{names[0].replace('_', '-')} and its companions need one entry each: got {lengths}")


def cmd_spuriosity_rankings(args) -> int:
    from ..measure.spuriosity import run_rankings

    _aligned(args, ("sets", "features", "imagesets"))
    info = run_rankings(args.annotations, args.model_dir, features=dict(zip(args.sets, map(str, args.features))),
                        imagesets=dict(zip(args.sets, map(str, args.imagesets))), stats_set=args.stats_set,
                        out=args.out)  # fmt: skip
    print(f"{args.out}: {info['rows']} images of {len(info['sets'])} sets ranked; {info['classes']} classes with spurious features")
    return 0


def cmd_spurious_gaps(args) -> int:
    from ..measure.spuriosity import run_gaps

    _aligned(args, ("models", "model_dirs", "features"))
    check_model_dirs(args.models, args.model_dirs, "--models")
    models = {m: (str(d), str(f)) for m, d, f in zip(args.models, args.model_dirs, args.features)}
    info = run_gaps(args.rankings, args.gap_set, models=models, k=args.k, out_gaps=args.out, out_models=args.out_models,
                    out_correlations=args.out_correlations)
    print(f"{args.out}: gaps of {info['models']} models on {info['classes']} classes; "
          f"mean pairwise r {info['gap_correlation_mean']:.3f}")  # fmt: skip
    return 0


def cmd_fit_head(args) -> int:
    import torch

    from ..config import load_config
    from ..discover.linear_head import HeadSettings, run_fit_head

    torch.set_num_threads(args.threads)
    lw = load_config(args.config)["lightweight"]
    info = run_fit_head(args.model_dir, args.train_features, args.test_features, args.out_dir,
                        HeadSettings(**lw["head"]), seed=lw["seed"])  # fmt: skip
    print(f"{args.out_dir}: linear head for {info['classes']} classes, train acc {info['train_acc']:.3f}, "
          f"test acc {info['test_acc']:.3f}")  # fmt: skip
    return 0


def cmd_lightweight_summary(args) -> int:
    from ..discover.auto_annotate import lightweight_summary
    from ..io import write_json

    summary = lightweight_summary(args.subsets, args.annotations, args.model_dir, args.imageset, args.features)
    write_json(args.out, summary)
    print(f"{args.out}: precision {summary['auto_annotator_precision']}, recall {summary['auto_annotator_recall']}, "
          f"planted cues recovered {summary['planted_cues_recovered']}")  # fmt: skip
    return 0


def cmd_corruptions(args) -> int:
    import torch

    from ..config import load_config
    from ..measure.corruptions import CorruptionSettings, run_corruptions

    torch.set_num_threads(args.threads)
    settings = CorruptionSettings(**load_config(args.config)["spuriosity"]["corruptions"])
    check_model_dirs([args.model], [args.model_dir])
    info = run_corruptions(args.model_dir, args.model, imageset_path=args.imageset, subsets_path=args.subsets,
                           annotations_path=args.annotations, masks_path=args.masks,
                           out=args.out, settings=settings, device=args.device, batch_size=args.batch_size,
                           progress=not args.quiet)  # fmt: skip
    print(f"{args.out}: {info['rows']} rows")
    return 0


def cmd_label_noise(args) -> int:
    import torch

    from ..config import load_config
    from ..measure.label_noise import run_label_noise

    torch.set_num_threads(args.threads)
    crop = load_config(args.config)["spuriosity"]["crop"]
    _aligned(args, ("models", "model_dirs"))
    check_model_dirs(args.models, args.model_dirs, "--models")
    info = run_label_noise(args.rankings, args.gaps, annotations_path=args.annotations, imageset_path=args.imageset,
                           set_name=args.set, discovery_dir=args.discovery_dir,
                           models=dict(zip(args.models, map(str, args.model_dirs))), out=args.out, figure=args.figure,
                           n=crop["candidates"], threshold=crop["threshold"], expand=crop["expand"],
                           device=args.device)  # fmt: skip
    print(f"{args.out}: {info['candidates']} candidates of negative-gap classes {info['classes']}")
    return 0


def cmd_spuriosity_summary(args) -> int:
    from ..measure.spuriosity_summary import run_spuriosity_summary

    s = run_spuriosity_summary(args.imageset, args.rankings, gaps_path=args.gaps, models_path=args.gap_models,
                               correlations_path=args.gap_correlations,
                               corruption_paths=args.corruptions, tuning_paths=args.tuning,
                               label_noise_path=args.label_noise, models_summary_path=args.models_summary, out=args.out,
                               gaps_figure=args.gaps_figure, tuning_figure=args.tuning_figure,
                               lightweight_path=args.lightweight,
                               discovery_model=args.discovery_model, gap_target=args.gap_target)  # fmt: skip
    auc = s["spuriosity_auc_mean"]
    print(f"{args.out}: spuriosity AUC (cue classes) {'n/a' if auc is None else f'{auc:.3f}'}, "
          f"{len(s['negative_gap_classes'])} negative-gap classes")  # fmt: skip
    return 0


def cmd_head_tuning(args) -> int:
    import torch

    from ..config import load_config
    from ..mitigate.head_tuning import TuningSettings, run_head_tuning

    torch.set_num_threads(args.threads)
    sp = load_config(args.config)["spuriosity"]
    settings = TuningSettings(**sp["tuning"], k_gap=sp["k"])
    check_model_dirs([args.model], [args.model_dir])
    sets = (sp["stats_set"], sp["gap_set"], sp["heldout_set"])
    info = run_head_tuning(args.model_dir, args.model, train_features=args.train_features, val_features=args.val_features,
                           test_features=args.heldout_features,
                           rankings_path=args.rankings, out=args.out, settings=settings, sets=sets)  # fmt: skip
    for method, e in info.items():
        print(f"{args.model} {method}: gap {e['gap_before']:.3f} -> {e['gap_after']:.3f}, "
              f"acc {e['acc_before']:.3f} -> {e['acc_after']:.3f}")  # fmt: skip
    return 0


def _shard_arg(p) -> None:
    from ..shards import Shard

    def shard(text: str) -> Shard:
        try:
            return Shard.parse(text)
        except SpurlabError as e:  # argparse turns this into a one-line usage error
            raise argparse.ArgumentTypeError(str(e)) from None

    p.add_argument("--shard", type=shard, default=Shard(), metavar="I/N",
                   help="only shard I of N (contiguous class ranges); merge-shards joins them (default 0/1: all)")  # fmt: skip


def cmd_npca(args) -> int:
    from ..config import load_config
    from ..discover.npca import run_npca

    npca = load_config(args.config)["npca"]
    n = npca["components"]
    info = run_npca(args.features, args.model_dir, args.out, n, progress=not args.quiet, solver=npca["solver"],
                    oversample=npca["oversample"], power_iterations=npca["power_iterations"],
                    workers=args.threads, shard=args.shard)  # fmt: skip
    print(f"{args.out}: top-{n} neural PCA bases of {info['classes']} classes, {len(info['skipped'])} skipped")
    return 0


def cmd_npca_components(args) -> int:
    import torch

    from ..config import load_config
    from ..discover.npfv import run_npca_components

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    npca, sal = cfg["npca"], cfg["salient"]
    # human answers and published lists are applied by `npca-annotate`, after the task pages exist
    annotation = dict(sal["annotation"], human_csv=None, source="auto")
    info = run_npca_components(args.model_dir, args.bases, imageset_path=args.imageset, features_path=args.features,
                               importance_path=args.importance, out=args.out,
                               out_table=args.table, npfv_settings=npca["npfv"], subset=sal["subset"],
                               annotation=annotation, top_images=npca["top_images"],
                               neurons_top=npca["neurons_top"], device=args.device, batch_size=args.batch_size,
                               progress=not args.quiet,
                               shard=args.shard)  # fmt: skip
    print(f"{args.out}: {info['components']} components ({info['spurious']} spurious), {info['neurons']} neurons")
    return 0


def cmd_npca_annotate(args) -> int:
    from ..config import load_config
    from ..discover.npfv import run_component_annotations

    annotation = load_config(args.config)["salient"]["annotation"]
    info = run_component_annotations(args.pairs, args.out, annotation, args.human_csv, args.published)
    print(f"{args.out}: {info['spurious']} of {info['components']} components spurious, "
          f"{info['annotated']} annotated ({info['source']})")
    return 0


def cmd_merge_shards(args) -> int:
    from ..shards import merge_shards

    info = merge_shards(args.shards, args.out, args.tables, args.table_out)
    print(f"{args.out}: merged {info['shards']} shard(s)")
    return 0


def cmd_npca_tasks(args) -> int:
    from ..discover.npfv import run_component_tasks

    n = run_component_tasks(args.components, args.imageset, args.out_dir)
    print(f"{args.out_dir}: {n} component task pages, index.html, manifest.csv")
    return 0


def cmd_npca_retrieval(args) -> int:
    from ..config import load_config
    from ..discover.retrieval import run_retrieval

    npca = load_config(args.config)["npca"]
    _aligned(args, ("pool_sets", "pool_imagesets", "pool_features"))
    pool = {n: (str(i), str(f)) for n, i, f in zip(args.pool_sets, args.pool_imagesets, args.pool_features)}
    if (args.validation_imageset is None) != (args.validation_features is None):
        raise SpurlabError("--validation-imageset and --validation-features go together")
    validation = None if args.validation_imageset is None else (str(args.validation_imageset), str(args.validation_features))
    r = npca["retrieval"]
    info = run_retrieval(args.model_dir, args.bases, pairs_path=args.pairs, pool=pool, out_set=args.out_set,
                         out_table=args.out, max_images=r["max_images"],
                         published=npca["published_components"], validation=validation, out_harmful=args.out_harmful,
                         harm_top=r["validation_top"],
                         harm_min_fraction=r["harmful_fraction"])  # fmt: skip
    print(f"{args.out}: {info['harmful']} of {info['components']} spurious components harmful; "
          f"{info['images']} images for {info['classes']} classes, precision {info['precision']}")
    return 0


def cmd_npca_spufix(args) -> int:
    from ..mitigate.spufix import run_spufix

    _aligned(args, ("models", "model_dirs", "train_features", "test_features", "cue_only_features"))
    check_model_dirs(args.models, args.model_dirs, "--models")
    n_pool = len(args.pool_sets)
    if len(args.pool_features) != n_pool * len(args.models):
        raise SpurlabError(f"--pool-features: expected {n_pool} per model ({n_pool * len(args.models)}), got {len(args.pool_features)}")
    models = {}
    for i, m in enumerate(args.models):
        e = {"dir": str(args.model_dirs[i]), "train": str(args.train_features[i]), "test": str(args.test_features[i]),
             "cue_only": str(args.cue_only_features[i])}  # fmt: skip
        e.update({s: str(args.pool_features[i * n_pool + j]) for j, s in enumerate(args.pool_sets)})
        models[m] = e
    info = run_spufix(args.robust, models, bases_path=args.bases, pairs_path=args.pairs, cue_only_set=args.cue_only_set,
                      retrieval_path=args.retrieval, harmful_path=args.harmful,
                      out_classes=args.out, out_models=args.out_models)  # fmt: skip
    print(f"{args.out}: SpuFix on {info['models']} models, {info['spurious_classes']} classes with spurious components")
    return 0


def cmd_npca_summary(args) -> int:
    from ..measure.npca_summary import run_npca_summary

    s = run_npca_summary(args.pairs, args.retrieval, harmful_path=args.harmful, classes_path=args.spufix,
                         models_path=args.spufix_models, out=args.out)
    print(f"{args.out}: planted cues recovered {s['planted_cues_recovered']}, retrieval precision {s['retrieval_precision']}")
    return 0


def _named(args, names_attr: str, paths_attr: str) -> dict:
    """--names a b --paths x y -> {a: x, b: y} (one path per name; model directories must hold
    the models they are named as)."""
    _aligned(args, (names_attr, paths_attr))
    if paths_attr == "model_dirs":
        check_model_dirs(getattr(args, names_attr), getattr(args, paths_attr), f"--{names_attr.replace('_', '-')}")
    return dict(zip(getattr(args, names_attr), map(str, getattr(args, paths_attr))))


def cmd_bam_train(args) -> int:
    from ..bam.models import train_bam_model
    from ..config import load_config

    meta = train_bam_model(load_config(args.config), args.model, train_set=args.train_set, val_set=args.val_set,
                           out_dir=args.out_dir, threads=args.threads,
                           progress=not args.quiet)  # fmt: skip
    print(f"{args.out_dir}: BAM model {args.model} val acc {meta['metrics']['val_acc']:.3f}")
    return 0


def cmd_bam_verify(args) -> int:
    from ..bam.verify import accuracy_drops, run_verification
    from ..config import load_config

    df = run_verification(load_config(args.config), _named(args, "models", "model_dirs"), _named(args, "set_names", "imagesets"), args.out)
    acc = df[df["rows"] == "all"].set_index(["model", "set"])["accuracy"]
    drops = ", ".join(f"k={k:g}: {v:+.3f}" for k, v in accuracy_drops(df).items())
    print(f"{args.out}: f_o on os/0s/og {acc['f_o'].round(3).tolist()}, f_s {acc['f_s'].round(3).tolist()}; drops {drops}")
    return 0


def cmd_bam_attributions(args) -> int:
    import torch

    from ..bam.attributions import run_part
    from ..config import load_config

    torch.set_num_threads(args.threads)
    info = run_part(load_config(args.config), args.part, _named(args, "models", "model_dirs"),
                    _named(args, "set_names", "imagesets"), args.out, progress=not args.quiet)  # fmt: skip
    print(f"{args.out}: {info}")
    return 0


def cmd_bam_tcav(args) -> int:
    import torch

    from ..bam.concepts import run_tcav
    from ..config import load_config

    torch.set_num_threads(args.threads)
    df = run_tcav(load_config(args.config), _named(args, "models", "model_dirs"), _named(args, "set_names", "imagesets"),
                  args.out, args.cache_dir, progress=not args.quiet)  # fmt: skip
    comb = df[df["layer"] == "combined"].set_index("model")["score"].round(3).to_dict()
    print(f"{args.out}: TCAV scores {comb}")
    return 0


def cmd_bam_summary(args) -> int:
    from ..bam.summary import run_bam_summary
    from ..config import load_config

    s = run_bam_summary(load_config(args.config), args.verification, contrast=args.contrast, kseries=_named(args,
                                                                                                            "kseries_codes", "kseries"),
                        iir_table=args.iir, tcav=args.tcav, out=args.out, figure=args.figure)  # fmt: skip
    mcs = {m: e["mcs"] for m, e in s["methods"].items()}
    print(f"{args.out}: MCS {mcs}, TCAV {s['tcav_mcs']}")
    return 0


def _pairs_arg(values, what: str) -> dict[str, list]:
    """KEY=PATH arguments as {key: [paths]} (a key may repeat)."""
    out: dict[str, list] = {}
    for v in values or []:
        key, sep, path = v.partition("=")
        if not sep or not key or not path:
            raise SpurlabError(f"{what}: '{v}' is not KEY=PATH")
        out.setdefault(key, []).append(path)
    return out


def cmd_report_tables(args) -> int:
    from ..config import load_config
    from ..io import sha256_file
    from ..report.summary_md import write_summary_md
    from ..io.tables import write_table
    from ..report.tables import Vocabulary, aggregate

    summaries = {k: v[0] for k, v in _pairs_arg(args.summary, "--summary").items()}
    details = [(k, p) for k, ps in _pairs_arg(args.detail, "--detail").items() for p in ps]
    df = aggregate(summaries, details, Vocabulary.from_config(load_config(args.config)))
    prov = {"inputs_sha256": {str(p): sha256_file(p) for p in [*summaries.values(), *(p for _, p in details)]}}
    write_table(df, args.out, prov)
    write_summary_md(summaries, args.summary_md)
    print(f"{args.out}: {len(df)} rows from {len(summaries)} stage summaries and {len(details)} tables; {args.summary_md}")
    return 0


def cmd_report_figure(args) -> int:
    from ..report.figures import make_report_figure

    make_report_figure(args.name, _pairs_arg(args.input, "--input"), args.out, args.svg, {"set": args.set})
    print(f"{args.out}, {args.svg}")
    return 0


def cmd_report_site(args) -> int:
    from ..report.site import build_site

    n = build_site(args.out, subsets=args.subsets, annotations=args.annotations, imageset=args.imageset,
                   components=args.components, npca_pairs=args.npca_pairs, npca_imageset=args.npca_imageset,
                   retrieval=args.retrieval, retrieved=args.retrieved, spufix=args.spufix, noise=args.noise or [],
                   corruptions=args.corruptions or [], n_show=args.n_show)  # fmt: skip
    print(f"{args.out}: {n['pages']} pages ({n['feature_pages']} features, {n['component_pages']} components, index), "
          f"{n['images']} images, {n['bytes'] / 1e6:.1f} MB")  # fmt: skip
    return 0


# `spurlab --help` lists the subcommands by pipeline stage: one table, stage -> (what, commands).
# A subcommand missing here is listed under "other" (tests/test_docs.py asserts there is none).
COMMAND_STAGES = {
    "data": ("image sets (the generated benchmarks, real-data folders)",
             ("make-set", "index-folder", "datasets-summary", "contact-sheet")),
    "models": ("train or import models, cache their features",
               ("train", "import-checkpoint", "features", "models-summary", "fit-head", "bam-train", "posthoc-train")),
    "discover": ("find spurious features (importance, D(i,j), neural PCA) and annotate them",
                 ("importance", "salient-subsets", "annotation-tasks", "await-answers", "annotate", "import-annotations",
                  "salient-masks", "lightweight-summary", "npca", "npca-components", "npca-tasks", "npca-annotate",
                  "npca-retrieval")),
    "measure": ("how much models rely on them (noise, spuriosity, gaps, scores, attributions)",
                ("noise", "salient-summary", "spuriosity-rankings", "spurious-gaps", "corruptions", "label-noise",
                 "spuriosity-summary", "npca-summary", "bam-verify", "bam-attributions", "bam-tcav", "bam-summary",
                 "posthoc-scores", "posthoc-attributions", "posthoc-tcav", "posthoc-influence", "posthoc-study",
                 "posthoc-study-analyse", "posthoc-summary")),
    "mitigate": ("reduce the reliance (head tuning, SpuFix)", ("head-tuning", "npca-spufix")),
    "report": ("one table, figures, the site", ("report-tables", "report-figure", "report-site")),
    "utilities": ("check configs, look at files, merge shards", ("validate-config", "list-sets", "inspect", "merge-shards")),
}  # fmt: skip


def _list_commands_by_stage(parser: argparse.ArgumentParser, sub) -> None:
    """Replace argparse's flat list of subcommands by one grouped by stage, one line per command
    (its help without the trailing "(rule ...)")."""
    import re

    helps = {a.dest: re.sub(r"\s*\(rules? [^)]*\)$", "", a.help or "") for a in sub._choices_actions}
    width = max(map(len, helps)) + 2
    staged = {c for _, commands in COMMAND_STAGES.values() for c in commands}
    groups = [(stage, what, [c for c in commands if c in helps]) for stage, (what, commands) in COMMAND_STAGES.items()]
    groups.append(("other", "not yet in spurlab.cli.COMMAND_STAGES", [c for c in helps if c not in staged]))
    lines = ["commands by stage (spurlab COMMAND -h for a command's options):"]
    for stage, what, commands in groups:
        if commands:
            lines += ["", f"{stage}: {what}"] + [f"  {c:<{width}}{helps[c]}" for c in commands]
    parser.epilog = "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.usage = "%(prog)s [-h] [--version] COMMAND ..."
    sub.help = argparse.SUPPRESS  # the grouped list above replaces the flat one


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="spurlab",
        description="Discover, measure and mitigate spurious features in image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"spurlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate-config", help="check config file(s) against the schema and cross-key rules")
    _config_arg(p)
    p.add_argument("--check-paths", action="store_true",
                   help="also check that the folders and files it names exist (image folder roots, synset maps, "
                        "val labels, class names, checkpoints; not human answer files), as the Snakefile does; "
                        "relative paths are relative to the working directory")  # fmt: skip
    p.set_defaults(func=cmd_validate_config)

    p = sub.add_parser("list-sets", help="print the names of the image sets a config defines")
    _config_arg(p)
    p.set_defaults(func=cmd_list_sets)

    p = sub.add_parser("make-set", help="render one image set of the planted-cue benchmark to HDF5 (rule image_set)")
    _config_arg(p)
    p.add_argument("--set", required=True, help="set name, e.g. train, counterfactual, bam_os_train (see list-sets)")
    p.add_argument("--out", required=True, type=Path, help="output .h5 path (written atomically)")
    p.add_argument("--threads", type=int, default=1, help="render threads; output is identical for any value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_make_set)

    p = sub.add_parser("index-folder", help="index an ImageNet-style folder tree as an image set (rule index_folder)")
    p.add_argument("--root", required=True, type=Path, help="root/<class folder>/<image files>")
    p.add_argument("--out", required=True, type=Path, help="output .h5 path (written atomically)")
    p.add_argument("--image-size", required=True, type=int, help="images are resized to this square side when read")
    p.add_argument("--set-name", help="the set's name (default: the output file's stem)")
    p.add_argument("--class-names", type=Path, help="text file, one display name per class folder (sorted order)")
    p.add_argument("--skip-bad-images", action="store_true", help="leave undecodable files out (listed) instead of failing")
    p.add_argument("--synsets", type=Path, help="wnid -> class index map (LOC_synset_mapping.txt or one wnid a line)")
    p.add_argument("--val-labels", type=Path, help="flat val layout: LOC_val_solution.csv or '<file> <wnid>' lines")
    p.add_argument("--threads", type=int, default=1, help="concurrent file readers")
    p.set_defaults(func=cmd_index_folder)

    p = sub.add_parser("datasets-summary", help="verify image sets and write results/datasets/summary.json")
    _config_arg(p)
    p.add_argument("--sets", nargs="+", required=True, type=Path, help="image set files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1, help="threads for the throughput measurement")
    p.set_defaults(func=cmd_datasets_summary)

    p = sub.add_parser("contact-sheet", help="PNG grid of an image set's first images with masks outlined")
    p.add_argument("imageset", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("-n", type=int, default=48, help="number of images")
    p.set_defaults(func=cmd_contact_sheet)

    p = sub.add_parser("train", help="train one model of the suite, resuming from its last epoch (rule train)")
    _config_arg(p)
    p.add_argument("--model", required=True, help="a key of models: in the config")
    p.add_argument("--train-set", required=True, type=Path, help="image set to train on")
    p.add_argument("--val-set", required=True, type=Path, help="image set for per-epoch validation")
    p.add_argument("--out-dir", required=True, type=Path, help="model directory (model.safetensors, meta.json, checkpoints/)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("import-checkpoint", help="import a plain or Madry robustness checkpoint (rule import_checkpoint)")
    p.add_argument("--config", "-c", nargs="+", metavar="YAML", help="take the checkpoint settings from models.<model>")
    p.add_argument("--model", required=True, help="model name (a key of models: when --config is given)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file (without --config)")
    p.add_argument("--layout", default="auto", choices=["auto", "madry", "state_dict"])
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--class-names", type=Path, help="text file, one class name per line")
    p.add_argument("--input-size", type=int, default=224, help="image side the model runs at")
    p.add_argument("--arch-args", metavar="MAPPING", help="keyword arguments of the architecture, as JSON or YAML "
                   "(e.g. '{\"width\": 8}'); recorded in meta.json and applied at every load (without --config)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_import_checkpoint)

    p = sub.add_parser("features", help="cache features, logits and predictions of a model on an image set (rule features)")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--block-rows", type=int, default=2048, help="rows read and written per block (bounds memory)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("models-summary", help="write results/models/summary.json (accuracies, counterfactual gaps)")
    _config_arg(p)
    p.add_argument("--models-dir", required=True, type=Path)
    p.add_argument("--features-dir", required=True, type=Path)
    p.add_argument("--counterfactual-set", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_models_summary)

    p = sub.add_parser("importance", help="neural feature importance and top-k features per class (rule importance)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path, help="the discovery model (its head W)")
    p.add_argument("--features", required=True, type=Path, help="that model's feature cache on salient.importance_set")
    p.add_argument("--out", required=True, type=Path, help="importance HDF5 (IV, counts, top-k)")
    p.add_argument("--table", required=True, type=Path, help="top-k table (.parquet; a .csv twin is written)")
    p.set_defaults(func=cmd_importance)

    p = sub.add_parser("salient-subsets", help="D(i,j) subsets with NAM soft masks and feature attacks (rule salient_subsets)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path, help="the image set of salient.subset_set")
    p.add_argument("--features", required=True, type=Path, help="the model's feature cache on that set")
    p.add_argument("--importance", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    _compute_args(p)
    _shard_arg(p)
    p.set_defaults(func=cmd_salient_subsets)

    p = sub.add_parser("annotation-tasks", help="HTML task pages and a CSV manifest for human annotation (rule annotation_tasks)")
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_annotation_tasks)

    p = sub.add_parser("await-answers", help="stop with one line naming the answers file the task pages need (rules await_*_answers)")
    p.add_argument("--tasks", required=True, type=Path, help="the task pages' index.html")
    p.add_argument("--answers", required=True, type=Path, help="the answers file to provide")
    p.add_argument("--key", required=True, help="the config key naming the answers file")
    p.set_defaults(func=cmd_await_answers)

    p = sub.add_parser("annotate", help="the annotations table: automatic, or human answers in the MTurk CSV layout (rule annotations)")
    _config_arg(p)
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--human-csv", type=Path, help="answers in the Salient ImageNet MTurk layout (source: human)")
    p.add_argument("--source", choices=["auto", "human"], help="override salient.annotation.source")
    p.add_argument("--out", required=True, type=Path, help="annotations table (.parquet; a .csv twin is written)")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("import-annotations", help="annotations table from MTurk-layout answers, published or partial")
    p.add_argument("--csv", required=True, type=Path, help="answers in the Salient ImageNet MTurk layout (, ; or tab)")
    p.add_argument("--out", required=True, type=Path, help="annotations table (.parquet; a .csv twin is written)")
    p.add_argument("--subsets", type=Path, help="salient subsets file: its pairs are the exported ones (coverage)")
    p.add_argument("--summary", type=Path, help="JSON: label counts, with --subsets the coverage")
    p.add_argument("--min-spurious-votes", type=int, default=3, help="k: spurious or core needs k answers (paper 3)")
    p.set_defaults(func=cmd_import_annotations)

    p = sub.add_parser("salient-masks", help="consolidated core and spurious masks per image, eq. 2 (rule salient_masks)")
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_salient_masks)

    p = sub.add_parser("noise", help="core and spurious accuracy of one model under masked noise (rule noise)")
    _config_arg(p)
    _subsets_model_args(p)
    p.add_argument("--out", required=True, type=Path, help="noise table (.parquet; a .csv twin is written)")
    _compute_args(p)
    _shard_arg(p)
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("salient-summary", help="write results/salient/summary.json and its figure (rule salient_summary)")
    _config_arg(p)
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--noise", required=True, type=Path, nargs="+", help="one noise table per model")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path, help="the image set of salient.subset_set")
    p.add_argument("--figure", required=True, type=Path, help="PNG: core/spurious accuracy vs sigma per model")
    p.add_argument("--grid", required=True, type=Path, help="PNG: top features per class as NAM heatmaps")
    p.add_argument("--model-dir", required=True, type=Path, help="the discovery model (salient.model)")
    p.add_argument("--features", required=True, type=Path, help="its feature cache of the image set (planted truth)")
    p.set_defaults(func=cmd_salient_summary)

    p = sub.add_parser("spuriosity-rankings", help="spuriosity and within-class rank of every image (rule spuriosity_rankings)")
    p.add_argument("--annotations", required=True, type=Path, help="the annotations table (rule annotations)")
    p.add_argument("--model-dir", required=True, type=Path, help="the discovery model (salient.model)")
    p.add_argument("--sets", required=True, nargs="+", help="names of the ranked sets")
    p.add_argument("--features", required=True, nargs="+", type=Path, help="the discovery model's feature cache per set")
    p.add_argument("--imagesets", required=True, nargs="+", type=Path, help="the image set per set (ground-truth cues)")
    p.add_argument("--stats-set", required=True, help="the set whose class statistics z-score the features")
    p.add_argument("--out", required=True, type=Path, help="rankings table (.parquet; a .csv twin is written)")
    p.set_defaults(func=cmd_spuriosity_rankings)

    p = sub.add_parser("spurious-gaps", help="class-wise spurious gaps, effective robustness, gap correlations (rule spurious_gaps)")
    p.add_argument("--rankings", required=True, type=Path)
    p.add_argument("--gap-set", required=True, help="the ranked set the gaps are measured on")
    p.add_argument("--k", type=int, default=10, help="images at each end of a class's ranking (paper: 10)")
    p.add_argument("--models", required=True, nargs="+", help="model names")
    p.add_argument("--model-dirs", required=True, nargs="+", type=Path)
    p.add_argument("--features", required=True, nargs="+", type=Path, help="each model's feature cache of the gap set")
    p.add_argument("--out", required=True, type=Path, help="per (model, class) gaps (.parquet)")
    p.add_argument("--out-models", required=True, type=Path, help="per model: accuracies, mean gap, effective robustness")
    p.add_argument("--out-correlations", required=True, type=Path, help="per model pair: Pearson r of class-wise gaps")
    p.set_defaults(func=cmd_spurious_gaps)

    p = sub.add_parser("fit-head", help="fit a linear head on frozen features of a new task (rule lightweight_head)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path, help="the frozen backbone (salient.model)")
    p.add_argument("--train-features", required=True, type=Path, help="its feature cache of the new task's train set")
    p.add_argument("--test-features", required=True, type=Path, help="its feature cache of the new task's test set")
    p.add_argument("--out-dir", required=True, type=Path, help="the new model directory")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.set_defaults(func=cmd_fit_head)

    p = sub.add_parser("lightweight-summary", help="score the new task's automatic annotations against planted truth")
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--model-dir", required=True, type=Path, help="the model with the fitted head")
    p.add_argument("--imageset", required=True, type=Path, help="the new task's image set the subsets were built on")
    p.add_argument("--features", required=True, type=Path, help="the model's feature cache of it (planted truth)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_lightweight_summary)

    p = sub.add_parser("corruptions", help="accuracy change under gray / blur / patch-rotate of each pair's regions (rule corruptions)")
    _config_arg(p)
    _subsets_model_args(p)
    p.add_argument("--out", required=True, type=Path, help="corruption table (.parquet; a .csv twin is written)")
    _compute_args(p)
    p.set_defaults(func=cmd_corruptions)

    p = sub.add_parser("label-noise", help="highest-spuriosity images of negative-gap classes and their core crops (rule label_noise)")
    _config_arg(p)
    p.add_argument("--rankings", required=True, type=Path)
    p.add_argument("--gaps", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path, help="the ranked set the candidates come from")
    p.add_argument("--set", required=True, help="its name in the rankings table")
    p.add_argument("--discovery-dir", required=True, type=Path, help="the model whose core NAMs crop (salient.model)")
    p.add_argument("--models", required=True, nargs="+", help="models evaluated on originals and crops")
    p.add_argument("--model-dirs", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path, help="candidates table (.parquet)")
    p.add_argument("--figure", required=True, type=Path, help="PNG: candidates with their crop boxes, and the crops")
    _compute_args(p)
    p.set_defaults(func=cmd_label_noise)

    p = sub.add_parser("spuriosity-summary", help="write results/spuriosity/summary.json and its figures (rule spuriosity_summary)")
    p.add_argument("--imageset", required=True, type=Path, help="the gap set's image set (class names, planted cues)")
    p.add_argument("--rankings", required=True, type=Path)
    p.add_argument("--gaps", required=True, type=Path)
    p.add_argument("--gap-models", required=True, type=Path)
    p.add_argument("--gap-correlations", required=True, type=Path)
    p.add_argument("--corruptions", required=True, nargs="+", type=Path, help="one corruption table per model")
    p.add_argument("--tuning", required=True, nargs="+", type=Path, help="one head-tuning table per model")
    p.add_argument("--label-noise", required=True, type=Path)
    p.add_argument("--models-summary", type=Path, help="results/models/summary.json (counterfactual gaps), if any")
    p.add_argument("--lightweight", type=Path, help="the lightweight-discovery summary, if any")
    p.add_argument("--discovery-model", required=True, help="the model that ranked the images (salient.model)")
    p.add_argument("--gap-target", required=True, type=finite_float, help="head tuning's stopping target (spuriosity.tuning.gap_target)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--gaps-figure", required=True, type=Path)
    p.add_argument("--tuning-figure", required=True, type=Path)
    p.set_defaults(func=cmd_spuriosity_summary)

    p = sub.add_parser("head-tuning", help="low-spuriosity head tuning against random and misclassified baselines (rule head_tuning)")
    _config_arg(p)
    p.add_argument("--model", required=True, help="the model's name (a key of models)")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--rankings", required=True, type=Path)
    p.add_argument("--train-features", required=True, type=Path, help="the model's cache of spuriosity.stats_set (tuning data)")
    p.add_argument("--val-features", required=True, type=Path, help="its cache of spuriosity.gap_set (early stopping)")
    p.add_argument("--heldout-features", type=Path, help="its cache of spuriosity.heldout_set, if any")
    p.add_argument("--out", required=True, type=Path, help="tuning table (.parquet; a .csv twin is written)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.set_defaults(func=cmd_head_tuning)

    p = sub.add_parser("npca", help="class-wise neural PCA bases from cached train features (rule npca_bases)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path, help="the model's feature cache of its training set")
    p.add_argument("--out", required=True, type=Path, help="bases (HDF5)")
    p.add_argument("--threads", type=int, default=1, help="classes fitted at once")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _shard_arg(p)
    p.set_defaults(func=cmd_npca)

    p = sub.add_parser("npca-annotate", help="label neural PCA components: human answers, a published list, or the automatic labels (rule npca_annotations)")
    _config_arg(p)
    p.add_argument("--pairs", required=True, type=Path, help="results/npca/pair_stats.parquet")
    p.add_argument("--human-csv", type=Path, help="answers to the component task pages (MTurk layout)")
    p.add_argument("--published", type=Path, help="a published {class: [components]} .npy list")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_npca_annotate)

    p = sub.add_parser("npca-components", help="NPFVs, top images, Grad-CAMs and annotation of neural PCA components (rule npca_components)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--bases", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path, help="images shown and annotated (salient.subset_set)")
    p.add_argument("--features", required=True, type=Path, help="the model's cache of that set")
    p.add_argument("--importance", required=True, type=Path, help="neuron importance, for the comparison")
    p.add_argument("--out", required=True, type=Path, help="components (HDF5)")
    p.add_argument("--table", required=True, type=Path, help="pair table with labels (.parquet)")
    _compute_args(p)
    _shard_arg(p)
    p.set_defaults(func=cmd_npca_components)

    p = sub.add_parser("merge-shards", help="merge the class-shard outputs of one job into its whole output (rules *_merge)")
    p.add_argument("shards", nargs="+", type=Path, help="shard files 0..n-1, in order (HDF5 or .parquet)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tables", nargs="+", type=Path, help="NPCA components only: the shards' pair tables")
    p.add_argument("--table-out", type=Path, help="NPCA components only: the merged pair table")
    p.set_defaults(func=cmd_merge_shards)

    p = sub.add_parser("npca-tasks", help="HTML task pages and a CSV manifest for neural PCA components (rule npca_annotation_tasks)")
    p.add_argument("--components", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_npca_tasks)

    p = sub.add_parser("npca-retrieval", help="cue-only images retrieved by spurious components (rule npca_retrieval)")
    _config_arg(p)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--bases", required=True, type=Path)
    p.add_argument("--pairs", required=True, type=Path)
    p.add_argument("--pool-sets", nargs="+", required=True)
    p.add_argument("--pool-imagesets", nargs="+", required=True, type=Path)
    p.add_argument("--pool-features", nargs="+", required=True, type=Path)
    p.add_argument("--out-set", required=True, type=Path, help="retrieved image set (HDF5)")
    p.add_argument("--out", required=True, type=Path, help="retrieval table (.parquet)")
    p.add_argument("--validation-imageset", type=Path, help="image set of the harmfulness check (npca.retrieval.validation_set)")
    p.add_argument("--validation-features", type=Path, help="the discovery model's feature cache of it")
    p.add_argument("--out-harmful", required=True, type=Path, help="per-component harmfulness table (.parquet)")
    p.set_defaults(func=cmd_npca_retrieval)

    p = sub.add_parser("npca-spufix", help="spurious score and accuracy before/after SpuFix for every model (rule npca_spufix)")
    p.add_argument("--robust", required=True, help="the model the components come from")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--model-dirs", nargs="+", required=True, type=Path)
    p.add_argument("--train-features", nargs="+", required=True, type=Path)
    p.add_argument("--test-features", nargs="+", required=True, type=Path)
    p.add_argument("--cue-only-features", nargs="+", required=True, type=Path)
    p.add_argument("--pool-sets", nargs="+", required=True)
    p.add_argument("--pool-features", nargs="+", required=True, type=Path, help="per model, one per pool set")
    p.add_argument("--cue-only-set", required=True, type=Path, help="the cue_only image set (ground-truth cues)")
    p.add_argument("--bases", required=True, type=Path)
    p.add_argument("--pairs", required=True, type=Path)
    p.add_argument("--retrieval", required=True, type=Path)
    p.add_argument("--harmful", required=True, type=Path, help="harmfulness table of npca-retrieval: the components SpuFix removes")
    p.add_argument("--out", required=True, type=Path, help="per-class table (.parquet)")
    p.add_argument("--out-models", required=True, type=Path, help="per-model table (.parquet)")
    p.set_defaults(func=cmd_npca_spufix)

    p = sub.add_parser("npca-summary", help="write results/npca/summary.json (rule npca_summary)")
    p.add_argument("--pairs", required=True, type=Path)
    p.add_argument("--retrieval", required=True, type=Path)
    p.add_argument("--harmful", required=True, type=Path)
    p.add_argument("--spufix", required=True, type=Path)
    p.add_argument("--spufix-models", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_npca_summary)

    p = sub.add_parser("bam-train", help="train a BAM model f_o, f_s or f_kNNN (rule bam_train)")
    _config_arg(p)
    p.add_argument("--model", required=True, help="f_o, f_s or f_kNNN")
    p.add_argument("--train-set", required=True, type=Path)
    p.add_argument("--val-set", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bam_train)

    def _bam_io(p):
        p.add_argument("--models", required=True, nargs="+", help="BAM model names")
        p.add_argument("--model-dirs", required=True, nargs="+", type=Path, help="one directory per model")
        p.add_argument("--set-names", required=True, nargs="+", help="image set names")
        p.add_argument("--imagesets", required=True, nargs="+", type=Path, help="one file per set name")

    p = sub.add_parser("bam-verify", help="BAM verification table: accuracies on X_os/X_0s/X_og, k-series drops (rule bam_verify)")
    _config_arg(p)
    _bam_io(p)
    p.add_argument("--out", required=True, type=Path, help="table (.parquet; a .csv twin is written)")
    p.set_defaults(func=cmd_bam_verify)

    p = sub.add_parser("bam-attributions", help="region means g_c of every attribution method for one BAM part (rule bam_attributions)")
    _config_arg(p)
    p.add_argument("--part", required=True, help="contrast, iir or kNNN")
    _bam_io(p)
    p.add_argument("--out", required=True, type=Path, help="table (.parquet; a .csv twin is written)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bam_attributions)

    p = sub.add_parser("bam-tcav", help="TCAV scores of the common-object concept for every BAM model (rule bam_tcav)")
    _config_arg(p)
    _bam_io(p)
    p.add_argument("--out", required=True, type=Path, help="table (.parquet; a .csv twin is written)")
    p.add_argument("--cache-dir", required=True, type=Path, help="captum's CAV cache (keyed by model hash)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_bam_tcav)

    p = sub.add_parser("bam-summary", help="write results/bam/summary.json and its figure (rule bam_summary)")
    _config_arg(p)
    p.add_argument("--verification", required=True, type=Path)
    p.add_argument("--contrast", required=True, type=Path)
    p.add_argument("--kseries-codes", required=True, nargs="+", help="kNNN codes, one per --kseries table")
    p.add_argument("--kseries", required=True, nargs="+", type=Path)
    p.add_argument("--iir", required=True, type=Path)
    p.add_argument("--tcav", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path, help="PNG: MCS bars and k-series curves")
    p.set_defaults(func=cmd_bam_summary)

    add_posthoc_parsers(sub, _config_arg)  # Adebayo et al. 2022 (rules/posthoc.smk)

    p = sub.add_parser("report-tables", help="tidy table of every metric and results/summary.md (rule report_tables)")
    _config_arg(p)
    p.add_argument("--summary", nargs="+", required=True, metavar="STAGE=JSON", help="stage summaries, in report order")
    p.add_argument("--detail", nargs="*", default=[], metavar="KIND=PARQUET",
                   help="per-unit stage tables: noise, gaps, corruptions, tuning, spufix, bam_verification, tcav")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="the tidy table (.parquet; a .csv twin beside it)")
    p.add_argument("--summary-md", required=True, type=Path)
    p.set_defaults(func=cmd_report_tables)

    p = sub.add_parser("report-figure", help="one report figure as PNG + SVG (rule report_figure)")
    p.add_argument("--name", required=True, help="noise_curves, spurious_gaps, gap_correlations, tuning_ranks, ...")
    p.add_argument("--input", nargs="+", required=True, metavar="KEY=PATH")
    p.add_argument("--set", default=None, help="the image set shown, where a figure shows images")
    p.add_argument("--out", required=True, type=Path, help="PNG")
    p.add_argument("--svg", required=True, type=Path)
    p.set_defaults(func=cmd_report_figure)

    p = sub.add_parser("report-site", help="static site: index with search, one page per (class, feature) and (class, component)")
    p.add_argument("--out", required=True, type=Path, help="the site directory (replaced whole)")
    p.add_argument("--subsets", required=True, type=Path)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--imageset", required=True, type=Path, help="the image set of the subsets file")
    p.add_argument("--components", type=Path, help="results/npca/components.h5")
    p.add_argument("--npca-pairs", type=Path)
    p.add_argument("--npca-imageset", type=Path)
    p.add_argument("--retrieval", type=Path)
    p.add_argument("--retrieved", type=Path)
    p.add_argument("--spufix", type=Path)
    p.add_argument("--noise", nargs="*", type=Path)
    p.add_argument("--corruptions", nargs="*", type=Path)
    p.add_argument("--n-show", type=int, default=5, help="images per row on a page")
    p.set_defaults(func=cmd_report_site)

    p = sub.add_parser("inspect", help="print a summary of a spurlab file (image set or feature cache)")
    p.add_argument("file", type=Path)
    p.add_argument("--verify", action="store_true", help="also recompute the content hash")
    p.set_defaults(func=cmd_inspect)
    _list_commands_by_stage(parser, sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpurlabError as e:
        print(f"spurlab: error: {e}", file=sys.stderr)
        return 2

