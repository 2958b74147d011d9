"""Load, merge and validate pipeline configs.

One validator serves the CLI and the Snakefile: the JSON schema (`schemas/config.schema.yaml`,
linked from `workflow/schemas/`) checks keys and types, then `check_semantics` checks what a
schema cannot (a cue assigned to a class that does not exist, ...). Every failure is a
`SpurlabError` whose message starts with the key path. Pure Python: the Snakefile imports this
at parse time, before any job runs, so a bad config writes nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import SpurlabError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
SHAPE_NAMES = ("disk", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "arrow",
               "heart", "diamond", "pentagon", "semicircle", "ellipse")  # fmt: skip
SCENE_NAMES = ("stripes", "checker", "sky", "grass", "water", "bricks", "dots", "wood", "sand", "clouds")


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def merge(base: dict, update: dict) -> dict:
    """Recursive dict update, as Snakemake merges several --configfile files."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first: int, again: int):
        super().__init__(f"duplicate key {key} (lines {first} and {again}; a key may appear once in a mapping)")


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml's SafeLoader, but a key given twice in one mapping is an error (yaml keeps the last
    value silently). The error names the key's dotted path and both lines."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        self._paths = {}
        self._name_mappings(node, [], set())
        return self.construct_document(node)

    def _name_mappings(self, node, parts: list, seen: set) -> None:
        if id(node) in seen:  # an alias of a node already named (or a recursive anchor)
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._paths[id(node)] = parts
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self._name_mappings(value_node, parts + [key], seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._name_mappings(item, parts + [i], seen)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    break
                if line != key_node.start_mark.line + 1:
                    parts = getattr(self, "_paths", {}).get(id(node), [])
                    raise _DuplicateKey(_key_path([*parts, key]), line, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike, what: str = "config file"):
    """Parse a UTF-8 YAML file with `UniqueKeyLoader`; any problem is one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise SpurlabError(f"{p}: {what} not found")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SpurlabError(f"{p}: cannot read the {what} ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SpurlabError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}, offset {e.start}); "
                           f"save the {what} as UTF-8") from None  # fmt: skip
    return parse_yaml(text, str(p))


def parse_yaml(text: str, where: str):
    """YAML text -> data with `UniqueKeyLoader`; an error is one line starting with `where`."""
    loader = UniqueKeyLoader(text)  # a SafeLoader: tags that would construct Python objects are refused
    try:
        return loader.get_single_data()
    except _DuplicateKey as e:
        raise SpurlabError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        raise SpurlabError(f"{where}: not valid YAML ({' '.join(str(e).split())})") from None
    except RecursionError:
        raise SpurlabError(f"{where}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def load_config(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> dict:
    """Read one or more YAML files (later ones override earlier ones) and validate the result.
    Each file must be UTF-8 and give every key once."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    cfg: dict = {}
    for p in paths:
        p = Path(p)
        data = read_yaml(p) or {}
        if not isinstance(data, dict):
            raise SpurlabError(f"{p}: a config file must be a mapping of keys")
        cfg = merge(cfg, data)
    return validate_config(cfg)


_MISSING = object()


def config_value(cfg: dict, key: str, default=_MISSING):
    """The value at dotted `key` ("salient.noise.seed"), or `default` when a part of the path is
    absent or null (an optional section); without a default that is an error naming the key."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise SpurlabError(f"config key {key}: missing")
            return default
        node = node[part]
    return node


class Settings:
    """Base of a stage's settings: a dataclass whose fields are config keys, read by `from_config`.

    Each field is the key of the same name under `SECTION` (dotted, e.g. "salient.noise"), or the
    dotted key `KEYS` names for it; `KEYS[field] = None` marks a field that is not in the config (a
    run-time option such as a batch size, which the command line sets). A key the config does not
    give (an optional schema key, an absent section) keeps the field's default: the paper's value.
    `tests/test_settings.py` checks every field's key against the schema, so a settings class and
    the schema cannot drift apart."""

    SECTION: ClassVar[str] = ""
    KEYS: ClassVar[dict[str, str | None]] = {}

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        """{field: dotted config key} of every field read from the config."""
        keys = {}
        for f in dataclasses.fields(cls):
            key = cls.KEYS.get(f.name, f"{cls.SECTION}.{f.name}")
            if f.init and key is not None:
                keys[f.name] = key
        return keys

    @classmethod
    def from_config(cls, cfg: dict):
        """The settings of a merged, validated config."""
        found = {name: config_value(cfg, key, default=_MISSING_OK) for name, key in cls.config_keys().items()}
        return cls(**{name: v for name, v in found.items() if v is not _MISSING_OK})


_MISSING_OK = object()  # from_config: an absent key keeps the field's default


def _key_path(parts) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in parts).replace(".[", "[") or "<root>"


def validate_config(cfg: dict) -> dict:
    """Schema, then semantics. Returns `cfg` unchanged; raises `SpurlabError` naming the key."""
    import jsonschema

    check_finite(cfg)
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise SpurlabError(_describe(errors[0]))
    check_semantics(cfg)
    return cfg


def check_finite(obj, parts=(), prefix: str = "config key ") -> None:
    """Every number in `obj` (nested dicts and lists) must be finite: NaN passes jsonschema's
    minimum/maximum and inf its exclusiveMinimum, so they are refused here, naming the key path
    (`prefix` + the dotted path of `parts` and the keys below)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise SpurlabError(f"{prefix}{_key_path(list(parts))}: {obj} is not a finite number")
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, (*parts, k), prefix)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, (*parts, i), prefix)


def _describe(err) -> str:
    path = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        key = _key_path(path + extra[:1])
        hint = f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""
        return f"config key {key}: unknown key{hint}"
    if err.validator == "required":
        return f"config key {_key_path(path)}: {err.message}"
    return f"config key {_key_path(path)}: {err.message}"


def _check_datasets(ds: dict, where: str) -> None:
    """A planted-cue `datasets` section (or the lightweight task's merged one) at key path `where`."""
    classes, scenes, cues = ds["classes"], ds["scenes"], ds["cues"]
    for i, c in enumerate(classes):
        if c not in SHAPE_NAMES:
            raise SpurlabError(
                f"config key {where}.classes[{i}]: unknown shape '{c}' (known: {', '.join(SHAPE_NAMES)})"
            )
    for i, s in enumerate(scenes):
        if s not in SCENE_NAMES:
            raise SpurlabError(f"config key {where}.scenes[{i}]: unknown scene '{s}' (known: {', '.join(SCENE_NAMES)})")
    _check_cues(cues, classes, scenes, f"{where}.cues")
    elsewhere: dict[str, float] = {}
    for cname, row in ds["cue_table"].items():
        key = f"{where}.cue_table.{cname}"
        if cname not in classes:
            raise SpurlabError(f"config key {key}: class '{cname}' is not in {where}.classes")
        if row["cue"] not in cues:
            raise SpurlabError(f"config key {key}.cue: cue '{row['cue']}' is not defined in {where}.cues")
        prev = elsewhere.setdefault(row["cue"], row["p_elsewhere"])
        if prev != row["p_elsewhere"]:
            raise SpurlabError(
                f"config key {key}.p_elsewhere: cue '{row['cue']}' is shared with another class whose "
                f"p_elsewhere is {prev}; a shared cue has one p_elsewhere"
            )
    bg = {n: c["scene"] for n, c in cues.items() if c["type"] == "background"}
    for cname in classes:
        total = sum(
            (
                ds["cue_table"][cname]["p_in_class"]
                if ds["cue_table"].get(cname, {}).get("cue") == n
                else elsewhere.get(n, 0.0)
            )
            for n in bg
        )
        if total > 1 + 1e-9:
            raise SpurlabError(
                f"config key {where}.cue_table: background cue probabilities for class '{cname}' sum to "
                f"{total:g} > 1 (an image has one scene)"
            )
    if not [s for s in scenes if s not in bg.values()]:
        raise SpurlabError(f"config key {where}.scenes: every scene is a background cue; at least one must be neutral")
    control = ds["counterfactual_control_cue"]
    if control is not None:
        if control not in cues:
            raise SpurlabError(
                f"config key {where}.counterfactual_control_cue: cue '{control}' is not defined in {where}.cues"
            )
        if control in elsewhere:
            raise SpurlabError(
                f"config key {where}.counterfactual_control_cue: cue '{control}' is assigned in {where}.cue_table; "
                "the control cue must be one no class is trained with"
            )
        if cues[control]["type"] == "background":
            raise SpurlabError(
                f"config key {where}.counterfactual_control_cue: a background cue cannot be the control cue"
            )
    if ds["object"]["scale"][0] > ds["object"]["scale"][1]:
        raise SpurlabError(f"config key {where}.object.scale: minimum is larger than maximum")


def enabled(cfg: dict, name: str) -> bool:
    """Whether an optional section is on: present, not null, and not `enabled: false`. The
    benchmark's sections (datasets, bam, contamination, posthoc, lightweight) are optional, so a
    real-data config simply leaves them out."""
    section = cfg.get(name)
    return bool(section) and bool(section.get("enabled", True))


def benchmark_on(cfg: dict) -> bool:
    """Whether the config has the planted-cue benchmark (a `datasets` section)."""
    return enabled(cfg, "datasets")


BENCHMARK_SECTIONS = ("bam", "contamination", "posthoc", "lightweight", "mitigation")


def check_semantics(cfg: dict) -> None:
    """Every cross-key check the schema cannot express (references between sections: sets,
    models, cues, signals, classes, scenes), in one place: `validate_config` (so `spurlab
    validate-config` and every CLI command) and the Snakefile call it, and no other module checks
    a config. Raises `SpurlabError` with one line naming the key path."""
    check_finite(cfg)
    _check_benchmark(cfg)
    _check_shards(cfg)
    _check_bam_section(cfg)
    _check_contamination(cfg)
    _check_posthoc(cfg)
    _check_interventions(cfg)
    _check_sets(cfg)
    _check_models(cfg)
    _check_salient(cfg)
    _check_spuriosity(cfg)
    _check_npca(cfg)
    _check_lightweight(cfg)
    _check_mitigation(cfg)


def _check_benchmark(cfg: dict) -> None:
    """The planted-cue benchmark's `datasets`, or (without it) none of the stages that need it."""
    if benchmark_on(cfg):
        _check_datasets(cfg["datasets"], "datasets")
        return
    for name in BENCHMARK_SECTIONS:
        if enabled(cfg, name) and name != "bam":
            raise SpurlabError(f"config key {name}.enabled: the {name} stage runs on the planted-cue "
                               "benchmark, which this config has no `datasets` section for")  # fmt: skip


def _check_bam_section(cfg: dict) -> None:
    bam = cfg.get("bam")
    if not bam:
        return
    _check_bam(bam)
    if bam["enabled"] and not cfg.get("train"):
        raise SpurlabError("config key train: required by the BAM stage (bam.benchmark.train overrides it)")


def _check_contamination(cfg: dict) -> None:
    con = cfg.get("contamination")
    if not con or not benchmark_on(cfg):
        return
    classes, scenes = cfg["datasets"]["classes"], cfg["datasets"]["scenes"]
    if con["aligned_class"] not in classes:
        raise SpurlabError(
            f"config key contamination.aligned_class: '{con['aligned_class']}' is not in datasets.classes"
        )
    for name, sig in con["signals"].items():
        if name == "clean":
            raise SpurlabError("config key contamination.signals.clean: 'clean' names the sets without a signal "
                               "(contam_clean_*); give the signal another name")  # fmt: skip
        if sig["type"] == "background":
            raise SpurlabError(
                f"config key contamination.signals.{name}.type: a background cannot be applied to an image"
            )
    _check_cues(con["signals"], classes, scenes, "contamination.signals")


def _check_posthoc(cfg: dict) -> None:
    """Adebayo et al.'s stage reads the contamination sets: its signal and concepts name them."""
    if not enabled(cfg, "posthoc"):
        return
    p = cfg["posthoc"]
    if not enabled(cfg, "contamination"):
        raise SpurlabError("config key posthoc.enabled: needs contamination.enabled (its image sets)")
    signals = list(cfg["contamination"]["signals"])
    if p["study"]["signal"] not in signals:
        raise SpurlabError(f"config key posthoc.study.signal: '{p['study']['signal']}' is not a contamination "
                           f"signal (one of {', '.join(signals)})")  # fmt: skip
    for key, known in (("shapes", "classes"), ("scenes", "scenes")):
        for i, name in enumerate(p["tcav"][key]):
            if name not in cfg["datasets"][known]:
                raise SpurlabError(f"config key posthoc.tcav.{key}[{i}]: '{name}' is not in datasets.{known}")


def _check_interventions(cfg: dict) -> None:
    """The interventional checks need a family to run on; the methods they rank are the ones the
    correlational stage scored."""
    if not enabled(cfg, "interventions"):
        return
    if not (benchmark_on(cfg) or enabled(cfg, "bam") or enabled(cfg, "posthoc")):
        raise SpurlabError(
            "config key interventions.enabled: needs the planted-cue benchmark (datasets), bam or posthoc"
        )
    stages = {"bam": ("bam.benchmark.methods", (cfg.get("bam") or {}).get("benchmark", {}).get("methods")),
              "posthoc": ("posthoc.methods", (cfg.get("posthoc") or {}).get("methods"))}  # fmt: skip
    for family, (key, known) in stages.items():
        chosen = cfg["interventions"]["methods"].get(family) or []
        if not enabled(cfg, family):
            continue
        for i, m in enumerate(chosen):
            if m not in known:
                raise SpurlabError(f"config key interventions.methods.{family}[{i}]: '{m}' is not in {key} "
                                   "(the correlational ranking it is compared with has no score for it)")  # fmt: skip


def _check_sets(cfg: dict) -> None:
    """Folder sets do not take a generated set's name; the feature cache names sets of this config."""
    generated = set(generated_sets(cfg))
    for name in folder_sets(cfg):
        if name in generated:
            raise SpurlabError(
                f"config key folders.{name}: '{name}' is already a generated image set of this config; "
                "give the folder set another name"
            )
    sets = set_names(cfg)
    for i, name in enumerate(cfg["features"]["sets"]):
        if name not in sets:
            raise SpurlabError(f"config key features.sets[{i}]: '{name}' is not an image set of this config")


def _check_lightweight(cfg: dict) -> None:
    """The second task: its merged `datasets` section, and the name of the model it makes."""
    if not enabled(cfg, "lightweight"):
        return
    _check_datasets(lightweight_datasets(cfg), "lightweight.datasets")
    (name,) = lightweight_model(cfg)
    if name in cfg["models"]:
        raise SpurlabError(f"config key models.{name}: the lightweight stage makes a model of this name "
                           "(salient.model + '_lightweight'); give the model another name")  # fmt: skip


def check_paths(cfg: dict) -> None:
    """The input files and folders a (validated) config names exist: every `folders.<set>.root` is a
    folder and its `synsets`, `val_labels`, `class_names` are files; every model's
    `checkpoint.path`, `checkpoint.class_names` and `init_checkpoint` are files. Relative paths are
    relative to the working directory (where Snakemake runs). Human answer files
    (`salient.annotation.human_csv`, `npca.human_csv`) are not checked: their absence is a normal
    state (the workflow writes the task pages and stops). Separate from `check_semantics` because a
    config is also validated where its data does not live (`spurlab validate-config` without
    `--check-paths`); the Snakefile calls both, so a missing path fails before any job runs."""

    def need(key: str, path, folder: bool = False) -> None:
        p = Path(path)
        where = "" if p.is_absolute() else f" (relative to {os.getcwd()})"
        if folder and not p.exists():
            raise SpurlabError(f"config key {key}: folder {path} not found{where}")
        if folder and not p.is_dir():
            raise SpurlabError(f"config key {key}: {path} is not a folder{where}")
        if not folder and not p.exists():
            raise SpurlabError(f"config key {key}: file {path} not found{where}")
        if not folder and not p.is_file():
            raise SpurlabError(f"config key {key}: {path} is not a file{where}")

    for name, entry in (cfg.get("folders") or {}).items():
        need(f"folders.{name}.root", entry["root"], folder=True)
        for key in ("synsets", "val_labels", "class_names"):
            if entry.get(key):
                need(f"folders.{name}.{key}", entry[key])
    for name, m in cfg["models"].items():
        ck = m.get("checkpoint") or {}
        for key in ("path", "class_names"):
            if ck.get(key):
                need(f"models.{name}.checkpoint.{key}", ck[key])
        if m.get("init_checkpoint"):
            need(f"models.{name}.init_checkpoint", m["init_checkpoint"])


def _check_bam(bam: dict) -> None:
    if bam.get("source", "synthetic") == "coco":  # objects: COCO category names; scenes: sub-folders
        for key in ("annotations", "images", "scenes_dir"):
            if not (bam.get("coco") or {}).get(key):
                raise SpurlabError(f"config key bam.coco.{key}: required when bam.source is coco")
    else:
        for i, o in enumerate(bam["objects"]):
            if o not in SHAPE_NAMES:
                raise SpurlabError(f"config key bam.objects[{i}]: unknown shape '{o}'")
        for i, s in enumerate(bam["scenes"]):
            if s not in SCENE_NAMES:
                raise SpurlabError(f"config key bam.scenes[{i}]: unknown scene '{s}'")
    if bam["common_object"] not in bam["objects"]:
        raise SpurlabError(f"config key bam.common_object: '{bam['common_object']}' is not in bam.objects")
    codes = [k_code(k) for k in bam["commonality"]]
    if "k100" not in codes:
        raise SpurlabError("config key bam.commonality: must include 1.0, the reference of the k-series MCS "
                           "(docs/methods.md#bam-metrics)")  # fmt: skip
    for i, code in enumerate(codes):
        if code in codes[:i]:
            raise SpurlabError(f"config key bam.commonality[{i}]: {bam['commonality'][i]} gives the set code {code} "
                               "of an earlier value (codes are hundredths)")  # fmt: skip


def k_code(k: float) -> str:
    """0.3 -> 'k030': the suffix of the BAM commonality sets and models."""
    return f"k{round(float(k) * 100):03d}"


def check_arch_args(args, where: str) -> None:
    """An `arch_args` mapping (config, or import-checkpoint's --arch-args) at `where`: names of
    the timm architecture's keyword arguments, finite values, and no `checkpoint_path`."""
    if args is None:
        return
    if not isinstance(args, dict):
        raise SpurlabError(f"{where}: must be a mapping of argument names to values, not a {type(args).__name__}")
    for k in args:
        if not isinstance(k, str) or not k.isidentifier():
            raise SpurlabError(f"{where}: '{k}' is not an argument name")
    check_finite(args, (where,), prefix="")
    if "checkpoint_path" in args:
        raise SpurlabError(f"{where}.checkpoint_path: not an architecture argument (arch_args are applied again at "
                           "every load); a suite model starts from a file with models.<name>.init_checkpoint")  # fmt: skip


def _check_models(cfg: dict) -> None:
    sets, labelled = set_names(cfg), labelled_sets(cfg)
    arch_args = {f"models.{n}": m.get("arch_args") for n, m in cfg["models"].items()}
    arch_args |= {"bam.benchmark": (cfg.get("bam") or {}).get("benchmark", {}).get("arch_args"),
                  "posthoc": (cfg.get("posthoc") or {}).get("arch_args")}  # fmt: skip
    for key, args in arch_args.items():
        check_arch_args(args, f"config key {key}.arch_args")
    for name, m in cfg["models"].items():
        key = f"models.{name}"
        if "checkpoint" in m:
            extra = [k for k in ("train_set", "val_set", "seed", "robust", "train", "init_checkpoint") if k in m]
            if extra:
                raise SpurlabError(f"config key {key}.{extra[0]}: an imported model (checkpoint) is not trained")
            if m.get("arch_args"):
                raise SpurlabError(f"config key {key}.arch_args: not applied to an imported model (the checkpoint "
                                   "loads into the timm architecture `arch` with its default arguments)")  # fmt: skip
            continue
        for k in ("train_set", "seed"):
            if k not in m:
                raise SpurlabError(f"config key {key}: '{k}' is required for a trained model")
        if not cfg.get("train"):
            raise SpurlabError(f"config key train: required for the trained model {key} (or give it a checkpoint)")
        if "val_set" not in m and "val" not in sets:
            raise SpurlabError(f"config key {key}.val_set: required (this config has no benchmark 'val' set)")
        for k in ("train_set", "val_set"):
            if k in m and m[k] not in labelled:
                raise SpurlabError(f"config key {key}.{k}: '{m[k]}' is not a labelled image set of this config")
    _check_model_names(cfg)


def _check_model_names(cfg: dict) -> None:
    """`spurlab train` trains a model by its name: no suite model takes a BAM or posthoc model's."""
    others = {"bam": bam_models, "posthoc": posthoc_models}
    for family, names in others.items():
        if not enabled(cfg, family):
            continue
        for name in cfg["models"]:
            if name in names(cfg):
                raise SpurlabError(f"config key models.{name}: '{name}' is also a {family} model of this config "
                                   "(models are trained by name); give it another name")  # fmt: skip


def _check_salient(cfg: dict) -> None:
    sal, models, cached = cfg["salient"], cfg["models"], cfg["features"]["sets"]
    if sal["model"] not in models:
        raise SpurlabError(f"config key salient.model: '{sal['model']}' is not a key of models")
    for key in ("importance_set", "subset_set"):
        if sal[key] not in cached:
            raise SpurlabError(
                f"config key salient.{key}: '{sal[key]}' is not in features.sets (its features must be cached)"
            )
    if sal["subset_set"] not in labelled_sets(cfg):
        raise SpurlabError(f"config key salient.subset_set: '{sal['subset_set']}' is not a labelled image set")
    sub = sal["subset"]
    if sub["min_images"] > sub["max_images"]:
        raise SpurlabError("config key salient.subset.min_images: larger than salient.subset.max_images")
    ann = sal["annotation"]
    if ann["source"] == "human" and not ann["human_csv"]:
        raise SpurlabError("config key salient.annotation.human_csv: required when salient.annotation.source is human")
    if ann["source"] == "auto" and sal["subset_set"] in folder_sets(cfg):
        raise SpurlabError(f"config key salient.annotation.source: 'auto' scores feature maps against object masks, "
                           f"which the folder set '{sal['subset_set']}' has none of; use 'human' with "
                           "salient.annotation.human_csv")  # fmt: skip
    noise = sal["noise"]
    for i, m in enumerate(noise["models"] or []):
        if m not in models:
            raise SpurlabError(f"config key salient.noise.models[{i}]: '{m}' is not a key of models")
    if 0 not in noise["sigmas"]:
        raise SpurlabError(
            "config key salient.noise.sigmas: must include 0 (the clean accuracy every drop is measured from)"
        )


def _check_spuriosity(cfg: dict) -> None:
    sp, cached = cfg["spuriosity"], cfg["features"]["sets"]
    for i, name in enumerate(sp["sets"]):
        if name not in cached:
            raise SpurlabError(
                f"config key spuriosity.sets[{i}]: '{name}' is not in features.sets (its features must be cached)"
            )
        if name not in labelled_sets(cfg):
            raise SpurlabError(f"config key spuriosity.sets[{i}]: '{name}' is not a labelled image set")
    for key in ("stats_set", "gap_set", "heldout_set"):
        if sp[key] is not None and sp[key] not in sp["sets"]:
            raise SpurlabError(f"config key spuriosity.{key}: '{sp[key]}' is not in spuriosity.sets")
    if sp["gap_set"] in (sp["stats_set"], sp["heldout_set"]):
        raise SpurlabError("config key spuriosity.gap_set: must differ from stats_set (tuning data) and heldout_set")
    for i, name in enumerate(sp["models"] or []):
        if name not in cfg["models"]:
            raise SpurlabError(f"config key spuriosity.models[{i}]: '{name}' is not a key of models")


def _check_npca(cfg: dict) -> None:
    npca, sets = cfg["npca"], set_names(cfg)
    ret = npca["retrieval"]
    refs = {"npca.test_set": npca["test_set"], "npca.cue_only_set": npca["cue_only_set"]}
    refs |= {f"npca.retrieval.pool_sets[{i}]": s for i, s in enumerate(ret["pool_sets"])}
    for key, name in refs.items():
        if name not in sets:
            raise SpurlabError(f"config key {key}: '{name}' is not an image set of this config")
    if npca["test_set"] not in labelled_sets(cfg):
        raise SpurlabError(f"config key npca.test_set: '{npca['test_set']}' is not a labelled image set")
    if npca["human_csv"] and npca["human_csv"] == cfg["salient"]["annotation"]["human_csv"]:
        raise SpurlabError("config key npca.human_csv: the same file as salient.annotation.human_csv; components "
                           "and neurons are answered in separate files (their task pages differ)")  # fmt: skip
    no_masks = cfg["salient"]["subset_set"] in folder_sets(cfg)
    if no_masks and not (npca["human_csv"] or npca["published_components"]):
        raise SpurlabError("config key npca.human_csv: components of a folder set cannot be annotated automatically "
                           "(no object masks); give npca.human_csv (answers to results/npca/tasks/) or "
                           "npca.published_components")  # fmt: skip
    val = ret["validation_set"]
    if val is None:
        return
    if val not in labelled_sets(cfg):
        raise SpurlabError(
            f"config key npca.retrieval.validation_set: '{val}' is not a labelled image set of this config"
        )
    if val == npca["test_set"] or val in ret["pool_sets"]:
        raise SpurlabError("config key npca.retrieval.validation_set: must differ from npca.test_set and "
                           "npca.retrieval.pool_sets (the harmfulness check is kept apart from what it selects)")  # fmt: skip


def lightweight_datasets(cfg: dict) -> dict:
    """The second task's `datasets` section: lightweight.datasets' keys replace those of datasets
    (n_images merges: its train/test sizes, the other splits' are unused)."""
    lw = cfg["lightweight"]["datasets"]
    ds = dict(cfg["datasets"], classes=lw["classes"], cue_table=lw["cue_table"])
    ds["n_images"] = dict(ds["n_images"], **lw["n_images"])
    return ds


LIGHTWEIGHT_SPLITS = ("train", "test")


def _check_mitigation(cfg: dict) -> None:
    """Group labels come from the planted cue flags of a core set; the spurious gap needs the test
    set's spuriosity; the stage compares mitigations of the audited models."""
    if not enabled(cfg, "mitigation") or not benchmark_on(cfg):
        return
    mit = cfg["mitigation"]
    if mit["val_set"] not in ("train", "val", "test"):
        raise SpurlabError(f"config key mitigation.val_set: '{mit['val_set']}' is not train, val or test (a set "
                           "of datasets whose images carry the planted cue flags that give their groups)")  # fmt: skip
    if mit["test_set"] not in cfg["spuriosity"]["sets"]:
        raise SpurlabError(f"config key mitigation.test_set: '{mit['test_set']}' is not in spuriosity.sets "
                           "(its spurious gap needs the images' spuriosity)")  # fmt: skip
    if mit["test_set"] == mit["val_set"]:
        raise SpurlabError(
            "config key mitigation.test_set: must differ from mitigation.val_set (DFR and JTT fit there)"
        )
    if not mitigation_models(cfg):
        raise SpurlabError("config key mitigation.enabled: no audited model (spuriosity.models without salient.model, "
                           "the discovery model) to compare mitigations on")  # fmt: skip


def mitigation_models(cfg: dict) -> list[str]:
    """The audited models of the `mitigation` target: the spuriosity stage's models except the
    discovery model (salient.model); [] when the stage is off."""
    if not enabled(cfg, "mitigation"):
        return []
    return [m for m in spuriosity_models(cfg) if m != cfg["salient"]["model"]]


def lightweight_model(cfg: dict) -> list[str]:
    """[name] of the discovery model's backbone with a head fit on the second task, or []."""
    return [f"{cfg['salient']['model']}_lightweight"] if enabled(cfg, "lightweight") else []


def spuriosity_models(cfg: dict) -> list[str]:
    """The models whose spurious gaps, corruptions and head tuning the `spuriosity` target measures."""
    return list(cfg["spuriosity"]["models"] or cfg["models"])


def one_of(names) -> str:
    """A Snakemake wildcard regex matching exactly these names (nothing when there are none)."""
    import re

    return "|".join(map(re.escape, names)) or "(?!)"


def noise_models(cfg: dict) -> list[str]:
    """The models whose core/spurious accuracy the `salient` target measures (default: the suite)."""
    return list(cfg["salient"]["noise"]["models"] or cfg["models"])


def _check_cues(cues: dict, classes: list, scenes: list, where: str) -> None:
    for name, c in cues.items():
        if c["type"] == "background" and c["scene"] not in scenes:
            raise SpurlabError(f"config key {where}.{name}.scene: '{c['scene']}' is not in datasets.scenes")
        if c["type"] == "co_object":
            if c["glyph"] not in SHAPE_NAMES:
                raise SpurlabError(f"config key {where}.{name}.glyph: unknown shape '{c['glyph']}'")
            if c["glyph"] in classes:
                raise SpurlabError(
                    f"config key {where}.{name}.glyph: '{c['glyph']}' is a class shape; a co-object must differ"
                )


def _check_shards(cfg: dict) -> None:
    """Every class shard needs a class: compare with the generated sets the sharded stages read
    (a folder set's classes are known once indexed; `spurlab.shards` checks them there)."""
    n = cfg["compute"]["class_shards"]
    counts = {}
    if benchmark_on(cfg) and cfg["salient"]["subset_set"] not in folder_sets(cfg):
        counts["datasets.classes"] = len(cfg["datasets"]["classes"])
    if enabled(cfg, "lightweight"):
        counts["lightweight.datasets.classes"] = len(lightweight_datasets(cfg)["classes"])
    for key, c in counts.items():
        if n > c:
            raise SpurlabError(f"config key compute.class_shards: {n} shards for the {c} classes of {key}")


def section_for_set(cfg: dict, set_name: str) -> dict[str, Any]:
    """The slice of config a set is made from (what its config_sha256 covers)."""
    if set_name in folder_sets(cfg):
        return {"folders": {set_name: cfg["folders"][set_name]}}
    if set_name.startswith("bam_"):
        # the benchmark settings (models, attributions) do not change the images; nor do the COCO
        # paths when the source is synthetic (so adding them left existing sets' hashes as they were)
        skip = {"benchmark"} | ({"source", "coco"} if cfg["bam"].get("source", "synthetic") == "synthetic" else set())
        return {"seed": cfg["seed"], "bam": {k: v for k, v in cfg["bam"].items() if k not in skip}}
    if set_name.startswith("lightweight_"):
        return {"seed": cfg["lightweight"]["seed"], "datasets": lightweight_datasets(cfg)}
    if set_name.startswith("contam_"):
        return {"seed": cfg["seed"], "datasets": cfg["datasets"], "contamination": cfg["contamination"]}
    return {"seed": cfg["seed"], "datasets": cfg["datasets"]}


CORE_SETS = ("train", "val", "test", "counterfactual", "cue_only")


def set_names(cfg: dict) -> list[str]:
    """Every image set the config asks for, in a stable order (the `datasets` target's outputs)."""
    return generated_sets(cfg) + folder_sets(cfg)


def labelled_sets(cfg: dict) -> list[str]:
    """Image sets whose labels are the classes shown (not the benchmark's cue_only and
    counterfactual sets)."""
    return [s for s in set_names(cfg) if s not in ("cue_only", "counterfactual")]


def folder_sets(cfg: dict) -> list[str]:
    """Index sets of real-data folders (`folders:`, rule `index_folder`), in config order."""
    return list(cfg.get("folders") or {})


def set_paths(names: list[str]) -> list[str]:
    """The image set files of these set names (rule inputs): results/datasets/<set>.h5."""
    return [f"results/datasets/{s}.h5" for s in names]


def model_dirs_arg(stage: str, models: list[str]) -> str:
    """The --model-dirs argument of a stage's rules: results/<stage>/models/<m> per model (the
    BAM and post hoc stages train their own models: stage `bam` or `posthoc`)."""
    return " ".join(f"results/{stage}/models/{m}" for m in models)


def bam_source_inputs(cfg: dict, set_name: str) -> list[str]:
    """The files a generated set is read from (rule image_set's inputs): for a BAM set with
    `bam.source: coco`, the COCO JSON, its image folder and the scene folder; otherwise none."""
    if not set_name.startswith("bam_") or not enabled(cfg, "bam") or cfg["bam"].get("source", "synthetic") != "coco":
        return []
    c = cfg["bam"]["coco"]
    return [c["annotations"], c["images"], c["scenes_dir"]]


def folder_options(cfg: dict, name: str) -> str:
    """The optional `spurlab index-folder` flags of the folder set `name` (rule index_folder)."""
    import shlex

    entry = cfg["folders"][name]
    opts = ["--class-names", shlex.quote(entry["class_names"])] if entry.get("class_names") else []
    for key in ("synsets", "val_labels"):  # ImageNet's wnid -> index map; the flat val layout
        if entry.get(key):
            opts += [f"--{key.replace('_', '-')}", shlex.quote(entry[key])]
    return " ".join(opts + (["--skip-bad-images"] if entry.get("skip_bad_images") else []))


def generated_sets(cfg: dict) -> list[str]:
    """Sets rendered by the generators (rule `image_set`): planted-cue benchmark, BAM, contamination."""
    names = list(CORE_SETS) if benchmark_on(cfg) else []
    if enabled(cfg, "bam"):
        variants = ["os", "0s", "og"] + [k_code(k) for k in sorted(cfg["bam"]["commonality"])]
        names += [f"bam_{v}_{s}" for v in variants for s in ("train", "test")]
    if enabled(cfg, "contamination"):
        signals = ["clean"] + list(cfg["contamination"]["signals"])
        names += [f"contam_{g}_{s}" for g in signals for s in ("train", "test")]
    if enabled(cfg, "lightweight"):
        names += [f"lightweight_{s}" for s in LIGHTWEIGHT_SPLITS]
    return names


def trained_models(cfg: dict) -> list[str]:
    return [n for n, m in cfg["models"].items() if "checkpoint" not in m]


def imported_models(cfg: dict) -> list[str]:
    return [n for n, m in cfg["models"].items() if "checkpoint" in m]


def model_section(cfg: dict, name: str) -> dict:
    """What a model is made from: its entry and the training settings it resolves to."""
    m = cfg["models"][name]
    if "checkpoint" in m:
        return {"model": m}
    return {"seed": cfg["seed"], "model": m, "train": merge(cfg["train"], m.get("train", {}))}


# --- the BAM and post hoc models ------------------------------------------------------------------
# Yang & Kim 2019 (BAM, docs/methods.md#bam-compositing) and Adebayo et al. 2022
# (docs/methods.md#spurious-contamination) train their own models on their own sets: which models
# a config has, the sets each trains on and what each is made from (rule params, checkpoint
# fingerprint, meta record). The Snakefile calls these at parse time; `spurlab.train.train_model`
# trains any of them by name.


def kseries_codes(cfg: dict) -> list[str]:
    """The commonality codes of BAM's k-series, ascending (`check_semantics` has checked that 1.0,
    the reference, is among them)."""
    return [k_code(k) for k in sorted(cfg["bam"]["commonality"])]


def bam_models(cfg: dict) -> list[str]:
    """f_o (object labels on X_os), f_s (scene labels on X_os), f_kNNN (scene labels on X_os^k)."""
    return ["f_o", "f_s"] + [f"f_{c}" for c in kseries_codes(cfg)]


def bam_model_sets(name: str) -> tuple[str, str, str | None]:
    """(train set, validation set, label column or None for the set's own labels) of a BAM model."""
    if name == "f_o":
        return "bam_os_train", "bam_os_test", None
    if name == "f_s":
        return "bam_os_train", "bam_os_test", "scene_label"
    if name.startswith("f_k"):
        code = name[2:]
        return f"bam_{code}_train", f"bam_{code}_test", None
    raise SpurlabError(f"BAM model '{name}': expected f_o, f_s or f_kNNN")


def bam_model_section(cfg: dict, name: str) -> dict:
    """What a BAM model is made from (rule params, checkpoint fingerprint, meta record)."""
    b = cfg["bam"]["benchmark"]
    train = merge(cfg["train"], b["train"])
    if name == "f_o":  # shapes take longer to learn than scenes
        train = merge(train, b["train_object"])
    return {"seed": b["seed"], "model": {"arch": b["arch"], "arch_args": b["arch_args"]},
            "train": train, "name": name, "sets": list(bam_model_sets(name))}  # fmt: skip


def bam_attribution_parts(cfg: dict) -> list[str]:
    """The jobs of rule bam_attributions: `contrast` (f_o vs f_s, and f_s without objects for
    IDR), one per k-series model, and `iir`."""
    return ["contrast"] + kseries_codes(cfg) + ["iir"]


def bam_part_inputs(cfg: dict, part: str) -> dict:
    """{'models': [...], 'sets': [...]} that one BAM attribution part reads."""
    if part == "contrast":
        return {"models": ["f_o", "f_s"], "sets": ["bam_os_test", "bam_0s_test"]}
    if part == "iir":
        return {"models": ["f_s"], "sets": ["bam_os_test", "bam_0s_test"]}
    if part in kseries_codes(cfg):
        return {"models": [f"f_{part}"], "sets": [f"bam_{part}_test"]}
    raise SpurlabError(
        f"BAM attribution part '{part}': expected contrast, iir or one of {', '.join(kseries_codes(cfg))}"
    )


NORMAL_MODEL = "normal"  # Adebayo et al.'s model trained on clean images


def contamination_signals(cfg: dict) -> list[str]:
    """The contamination signals (docs/methods.md#spurious-contamination), in config order: tag,
    stripe, blur by default."""
    return list(cfg["contamination"]["signals"])


def spurious_model(signal: str) -> str:
    return f"spurious_{signal}"


def posthoc_models(cfg: dict) -> list[str]:
    """`normal` (clean data) and `spurious_<signal>` per signal (signal on every aligned-class
    training image)."""
    return [NORMAL_MODEL] + [spurious_model(s) for s in contamination_signals(cfg)]


def posthoc_model_sets(cfg: dict, name: str) -> tuple[str, str]:
    """(training set, validation set) of a posthoc model; every model is validated on clean test images."""
    if name == NORMAL_MODEL:
        return "contam_clean_train", "contam_clean_test"
    for s in contamination_signals(cfg):
        if name == spurious_model(s):
            return f"contam_{s}_train", "contam_clean_test"
    raise SpurlabError(
        f"posthoc model '{name}': expected normal or spurious_<signal> ({', '.join(contamination_signals(cfg))})"
    )


def posthoc_model_section(cfg: dict, name: str) -> dict:
    """What a posthoc model is made from (rule params, checkpoint fingerprint, meta record)."""
    p = cfg["posthoc"]
    return {"seed": p["seed"], "model": {"arch": p["arch"], "arch_args": p["arch_args"]},
            "train": merge(cfg["train"], p["train"]), "name": name, "sets": list(posthoc_model_sets(cfg, name))}  # fmt: skip


def posthoc_test_sets(cfg: dict) -> list[str]:
    """contam_clean_test and its row-for-row twins with each signal."""
    return ["contam_clean_test"] + [f"contam_{s}_test" for s in contamination_signals(cfg)]


def model_families(cfg: dict) -> dict[str, list[str]]:
    """The models `spurlab train` can train, by family: the suite's trained models (`models:`),
    BAM's (when `bam` is on) and Adebayo et al.'s (when `posthoc` is on)."""
    return {"suite": trained_models(cfg), "bam": bam_models(cfg) if enabled(cfg, "bam") else [],
            "posthoc": posthoc_models(cfg) if enabled(cfg, "posthoc") else []}  # fmt: skip


def model_family(cfg: dict, name: str) -> str:
    """The family ('suite', 'bam' or 'posthoc') of trained model `name` (names are unique across
    families: `check_semantics`)."""
    for family, names in model_families(cfg).items():
        if name in names:
            return family
    if name in imported_models(cfg):
        raise SpurlabError(f"model '{name}': imported from a checkpoint (rule import_checkpoint), not trained")
    known = "; ".join(f"{f}: {', '.join(n) or '-'}" for f, n in model_families(cfg).items())
    raise SpurlabError(f"model '{name}': not a trained model of this config ({known})")
