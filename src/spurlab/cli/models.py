"""Models (rules/models.smk, and the BAM and posthoc models of rules/bam.smk and rules/posthoc.smk):
train any model of the config, import a checkpoint, cache features, the models' summary."""

from __future__ import annotations

from ..errors import SpurlabError
from .args import read_text
from .table import CONFIG, QUIET, Command, arg, path, text, threads


def train(cfg: dict, a) -> int:
    from ..config import model_family
    from ..train import train_model

    meta = train_model(cfg, a.model, train_set=a.train_set, val_set=a.val_set, out_dir=a.out_dir, threads=a.threads,
                       progress=not a.quiet)  # fmt: skip
    m = meta["metrics"]
    print(
        f"{a.out_dir}: {model_family(cfg, a.model)} model {a.model} val acc {m['val_acc']:.3f}"
        + (f", adv {m['val_adv_acc']:.3f}" if meta["robust"] else "")
    )
    return 0


def _arch_args(value: str | None) -> dict | None:
    """--arch-args: a JSON or YAML mapping of the architecture's keyword arguments, checked as
    models.<name>.arch_args is in a config."""
    from ..config import check_arch_args, parse_yaml

    if value is None:
        return None
    parsed = parse_yaml(value, "--arch-args")
    check_arch_args(parsed, "--arch-args")
    return parsed


def _checkpoint_source(cfg: dict | None, a) -> dict:
    """What to import: from models.<model>.checkpoint of the config, or from the options."""
    if cfg is None:
        if a.checkpoint is None:
            raise SpurlabError("import-checkpoint: give --checkpoint FILE, or --config with models.<model>.checkpoint")
        return {"path": a.checkpoint, "layout": a.layout, "arch": a.arch, "num_classes": a.num_classes,
                "class_names": a.class_names, "input_size": a.input_size}  # fmt: skip
    entry = cfg["models"].get(a.model)
    if entry is None or "checkpoint" not in entry:
        raise SpurlabError(f"models.{a.model}: not an imported model (no checkpoint) in this config")
    ck = entry["checkpoint"]
    return {"path": ck["path"], "layout": ck["layout"], "arch": entry["arch"], "num_classes": ck["num_classes"],
            "class_names": ck.get("class_names"), "input_size": ck.get("input_size", 224)}  # fmt: skip


def import_checkpoint(cfg: dict | None, a) -> int:
    from ..models import save_model
    from ..models.checkpoints import import_checkpoint

    arch_args = _arch_args(a.arch_args)
    if cfg is not None and arch_args is not None:
        raise SpurlabError(
            "--arch-args: not used with --config (an imported model of the config loads into its "
            "architecture with the default arguments; models.<name>.arch_args is refused there too)"
        )
    src = _checkpoint_source(cfg, a)
    n_classes, names_file = src["num_classes"], src["class_names"]
    class_names = [str(i) for i in range(n_classes)]
    if names_file:
        class_names = [line.strip() for line in read_text(names_file, "class names file").splitlines() if line.strip()]
        if len(class_names) != n_classes:
            raise SpurlabError(f"{names_file}: {len(class_names)} class names for num_classes {n_classes}")
    model, info = import_checkpoint(src["path"], arch=src["arch"], num_classes=n_classes, kind=src["layout"],
                                    input_size=src["input_size"], arch_args=arch_args)  # fmt: skip
    meta = {"name": a.model, "robust": info["layout"] == "madry", "imported": info, "class_names": class_names}
    save_model(model, a.out_dir, meta)
    print(f"{a.out_dir}: imported {src['path']} ({info['layout']}, sha256 {info['sha256'][:12]})")
    return 0


def features(_, a) -> int:
    import torch

    from ..data.feature_cache import model_checkpoint_sha256
    from ..data.imagesets import open_imageset
    from ..device import pick_device, prepare_model
    from ..features import cache_features
    from ..models import load_model

    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    model, meta = load_model(a.model_dir, device="cpu")
    model = prepare_model(model, device)
    with open_imageset(a.imageset) as s:
        if s.image_size != model.input_size:
            raise SpurlabError(
                f"{a.imageset}: images are {s.image_size}px, model {a.model_dir} expects {model.input_size}px"
            )
        cache_features(model, meta.get("name", a.model_dir.name), model_sha256=model_checkpoint_sha256(a.model_dir),
                       imageset=s, out=a.out, device=device, batch_size=a.batch_size, block=a.block_rows,
                       dtype=a.dtype, progress=not a.quiet)  # fmt: skip
    print(f"{a.out}: features of {a.model_dir} on {a.imageset}")
    return 0


def models_summary(cfg: dict, a) -> int:
    from ..io import write_json
    from ..models_summary import models_summary

    summary = models_summary(cfg, a.models_dir, a.features_dir, a.counterfactual_set)
    write_json(a.out, summary)
    print(
        f"{a.out}: cue-class mean gap {summary['cue_class_mean_gap']:.3f}, control {summary['control_class_mean_gap']:.3f}"
    )
    return 0


COMMANDS = (
    Command("train", "models", "train one model of any family, resuming from its last epoch (rules train, bam_train, "
            "posthoc_train)", train, (
        text("--model", "a trained model of the config: a key of models:, a BAM model (f_o, f_s, f_kNNN) or a "
             "posthoc model (normal, spurious_<signal>)"),
        path("--train-set", "image set to train on"),
        path("--val-set", "image set for per-epoch validation"),
        path("--out-dir", "model directory (model.safetensors, meta.json, checkpoints/)"),
        threads(),
        QUIET,
    ), settings=CONFIG),
    Command("import-checkpoint", "models", "import a plain or Madry robustness checkpoint (rule import_checkpoint)",
            import_checkpoint, (
        text("--model", "model name (a key of models: when --config is given)"),
        path("--checkpoint", "checkpoint file (without --config)", required=False),
        arg("--layout", default="auto", choices=["auto", "madry", "state_dict"]),
        arg("--arch", default="resnet50"),
        arg("--num-classes", type=int, default=1000),
        path("--class-names", "text file, one class name per line", required=False),
        arg("--input-size", type=int, default=224, help="image side the model runs at"),
        arg("--arch-args", metavar="MAPPING", help="keyword arguments of the architecture, as JSON or YAML "
            "(e.g. '{\"width\": 8}'); recorded in meta.json and applied at every load (without --config)"),
        path("--out-dir"),
    ), settings=CONFIG, config_required=False, config_help="take the checkpoint settings from models.<model>"),
    # a tool on its own (no config): the rule passes compute.* and features.* as these options
    Command("features", "models", "cache features, logits and predictions of a model on an image set (rule features)",
            features, (
        path("--model-dir"),
        path("--imageset"),
        path("--out"),
        arg("--batch-size", type=int, default=256),
        arg("--block-rows", type=int, default=2048, help="rows read and written per block (bounds memory)"),
        arg("--dtype", default="float32", choices=["float32", "float16"]),
        arg("--device", default="auto", choices=["auto", "cpu", "cuda"]),
        arg("--threads", type=int, default=2),
        arg("--quiet", action="store_true"),
    )),
    Command("models-summary", "models", "write results/models/summary.json (accuracies, counterfactual gaps)",
            models_summary, (
        path("--models-dir"),
        path("--features-dir"),
        path("--counterfactual-set"),
        path("--out"),
    ), settings=CONFIG),
)  # fmt: skip
