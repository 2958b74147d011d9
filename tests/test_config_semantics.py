"""Every cross-key rule lives in `spurlab.config.check_semantics`: `spurlab validate-config` refuses
a config that breaks one with one line naming the key, the Snakefile refuses it with the same line,
and every shipped or fixture config passes."""

import ast
import copy
import inspect
import os
import re
import subprocess
import sys

import pytest
import yaml

import spurlab.config as config_module
from spurlab.cli import main
from spurlab.config import check_semantics, load_config, merge, validate_config
from spurlab.errors import SpurlabError
from tests.conftest import ROOT, load_yaml

DELETE = object()
SKY_BG = {"type": "background", "scene": "sky"}
TRAIN = load_yaml("config.yaml")["train"]
IMPORTED = {"arch": "resnet50", "checkpoint": {"path": "x.pt", "layout": "madry", "num_classes": 1000}}

# (id, base config, edits {dotted path: value or DELETE}, key the message names, message fragment)
CASES = [
    # datasets (the planted-cue benchmark) and its cues
    ("classes", "default", {"datasets.classes": ["disk", "blob"]}, "datasets.classes[1]", "unknown shape 'blob'"),
    ("scenes", "default", {"datasets.scenes": ["meadow", "water"]}, "datasets.scenes[0]", "unknown scene 'meadow'"),
    ("cue_scene", "default", {"datasets.cues.water_bg.scene": "lava"}, "datasets.cues.water_bg.scene",
     "'lava' is not in datasets.scenes"),
    ("cue_glyph", "default", {"datasets.cues.feeder.glyph": "blob"}, "datasets.cues.feeder.glyph", "unknown shape 'blob'"),
    ("cue_glyph_class", "default", {"datasets.cues.feeder.glyph": "disk"}, "datasets.cues.feeder.glyph",
     "'disk' is a class shape"),
    ("cue_table_class", "default", {"datasets.cue_table.octagon": {"cue": "feeder", "p_in_class": 0.9, "p_elsewhere": 0.04}},
     "datasets.cue_table.octagon", "class 'octagon' is not in datasets.classes"),
    ("cue_table_cue", "default", {"datasets.cue_table.disk.cue": "nope"}, "datasets.cue_table.disk.cue",
     "cue 'nope' is not defined in datasets.cues"),
    ("shared_cue", "default", {"datasets.cue_table.ring.p_elsewhere": 0.2}, "datasets.cue_table.ring.p_elsewhere",
     "cue 'hospital_tag' is shared"),
    ("background_sum", "default", {"datasets.cues.sky_bg": SKY_BG,
                                   "datasets.cue_table.crescent": {"cue": "sky_bg", "p_in_class": 0.9, "p_elsewhere": 0.2}},
     "datasets.cue_table", "background cue probabilities for class 'disk' sum to 1.1"),
    ("no_neutral_scene", "default", {"datasets.scenes": ["water", "sky"], "datasets.cues.sky_bg": SKY_BG},
     "datasets.scenes", "every scene is a background cue"),
    ("control_undefined", "default", {"datasets.counterfactual_control_cue": "nope"},
     "datasets.counterfactual_control_cue", "cue 'nope' is not defined"),
    ("control_assigned", "default", {"datasets.counterfactual_control_cue": "feeder"},
     "datasets.counterfactual_control_cue", "must be one no class is trained with"),
    ("control_background", "default", {"datasets.cues.sky_bg": SKY_BG, "datasets.counterfactual_control_cue": "sky_bg"},
     "datasets.counterfactual_control_cue", "a background cue cannot be the control cue"),
    ("object_scale", "default", {"datasets.object.scale": [0.5, 0.35]}, "datasets.object.scale", "minimum is larger"),
    ("no_benchmark", "folders", {"lightweight": load_yaml("config.yaml")["lightweight"]}, "lightweight.enabled",
     "runs on the planted-cue benchmark"),
    ("shards", "default", {"compute.class_shards": 11}, "compute.class_shards", "11 shards for the 10 classes of datasets.classes"),
    ("shards_lightweight", "default", {"compute.class_shards": 7}, "compute.class_shards",
     "7 shards for the 6 classes of lightweight.datasets.classes"),
    # bam
    ("bam_coco", "default", {"bam.source": "coco"}, "bam.coco.annotations", "required when bam.source is coco"),
    ("bam_objects", "default", {"bam.objects": ["heart", "blob"]}, "bam.objects[1]", "unknown shape 'blob'"),
    ("bam_scenes", "default", {"bam.scenes": ["stripes", "meadow"]}, "bam.scenes[1]", "unknown scene 'meadow'"),
    ("bam_common_object", "default", {"bam.common_object": "dog"}, "bam.common_object", "'dog' is not in bam.objects"),
    ("bam_reference", "default", {"bam.commonality": [0.1, 0.5]}, "bam.commonality", "must include 1.0"),
    ("bam_codes", "default", {"bam.commonality": [0.1, 0.101, 1.0]}, "bam.commonality[1]", "gives the set code k010"),
    ("bam_train", "default", {"train": DELETE}, "train", "required by the BAM stage"),
    # contamination and posthoc
    ("aligned_class", "default", {"contamination.aligned_class": "cat"}, "contamination.aligned_class",
     "'cat' is not in datasets.classes"),
    ("signal_clean", "default", {"contamination.signals.clean": {"type": "blur", "sigma": 1.0}},
     "contamination.signals.clean", "'clean' names the sets without a signal"),
    ("signal_background", "default", {"contamination.signals.tag": {"type": "background", "scene": "water"}},
     "contamination.signals.tag.type", "a background cannot be applied"),
    ("signal_glyph", "default", {"contamination.signals.mark": dict(load_yaml("config.yaml")["datasets"]["cues"]["feeder"],
                                                                    glyph="square")},
     "contamination.signals.mark.glyph", "'square' is a class shape"),
    ("posthoc_contamination", "default", {"contamination.enabled": False}, "posthoc.enabled",
     "needs contamination.enabled"),
    ("study_signal", "default", {"posthoc.study.signal": "no_such_signal"}, "posthoc.study.signal",
     "'no_such_signal' is not a contamination signal (one of tag, stripe, blur)"),
    ("tcav_shapes", "default", {"posthoc.tcav.shapes": ["disk", "blob"]}, "posthoc.tcav.shapes[1]",
     "'blob' is not in datasets.classes"),
    ("tcav_scenes", "default", {"posthoc.tcav.scenes": ["meadow"]}, "posthoc.tcav.scenes[0]", "'meadow' is not in datasets.scenes"),
    # interventions
    ("interventions_family", "folders", {"interventions": load_yaml("config.yaml")["interventions"]}, "interventions.enabled",
     "needs the planted-cue benchmark (datasets), bam or posthoc"),
    ("interventions_methods", "default", {"posthoc.methods": ["gradient"], "interventions.methods.posthoc": ["smoothgrad"]},
     "interventions.methods.posthoc[0]", "'smoothgrad' is not in posthoc.methods"),
    # image sets and models
    ("folder_clash", "default", {"folders.train": {"root": "x", "image_size": 32}}, "folders.train",
     "already a generated image set"),
    ("features_sets", "default", {"features.sets": ["train", "holdout"]}, "features.sets[1]", "'holdout' is not an image set"),
    ("arch_args_name", "default", {"models.erm_cbr_w8_s2.arch_args": {"1x": 2}}, "models.erm_cbr_w8_s2.arch_args",
     "'1x' is not an argument name"),
    ("arch_args_checkpoint", "default", {"bam.benchmark.arch_args.checkpoint_path": "w.pt"},
     "bam.benchmark.arch_args.checkpoint_path", "not an architecture argument"),
    ("imported_trained", "default", {"models.imported": dict(IMPORTED, seed=1)}, "models.imported.seed",
     "an imported model (checkpoint) is not trained"),
    ("imported_arch_args", "default", {"models.imported": dict(IMPORTED, arch_args={"width": 8})},
     "models.imported.arch_args", "not applied to an imported model"),
    ("trained_needs_set", "default", {"models.nothing": {"arch": "cbr_tiny"}}, "models.nothing",
     "'train_set' is required for a trained model"),
    ("trained_needs_train", "folders", {"models.mine": {"arch": "resnet18", "train_set": "images_train", "seed": 0}},
     "train", "required for the trained model models.mine"),
    ("trained_needs_val", "folders", {"train": TRAIN, "models.mine": {"arch": "resnet18", "train_set": "images_train", "seed": 0}},
     "models.mine.val_set", "required (this config has no benchmark 'val' set)"),
    ("train_set", "default", {"models.erm_cbr_w8_s2.train_set": "cue_only"}, "models.erm_cbr_w8_s2.train_set",
     "'cue_only' is not a labelled image set"),
    ("val_set", "default", {"models.erm_cbr_w8_s2.val_set": "counterfactual"}, "models.erm_cbr_w8_s2.val_set",
     "'counterfactual' is not a labelled image set"),
    # salient
    ("salient_model", "default", {"salient.model": "nope"}, "salient.model", "'nope' is not a key of models"),
    ("salient_cached", "default", {"features.sets": ["val", "test", "counterfactual", "cue_only"]}, "salient.importance_set",
     "'train' is not in features.sets"),
    ("salient_labelled", "default", {"salient.subset_set": "cue_only"}, "salient.subset_set",
     "'cue_only' is not a labelled image set"),
    ("salient_min_max", "default", {"salient.subset.min_images": 70}, "salient.subset.min_images",
     "larger than salient.subset.max_images"),
    ("salient_human", "default", {"salient.annotation.source": "human"}, "salient.annotation.human_csv",
     "required when salient.annotation.source is human"),
    ("salient_auto_folders", "folders", {"salient.annotation.source": "auto"}, "salient.annotation.source",
     "'auto' scores feature maps against object masks"),
    ("noise_models", "default", {"salient.noise.models": ["nope"]}, "salient.noise.models[0]", "'nope' is not a key of models"),
    ("noise_sigmas", "default", {"salient.noise.sigmas": [0.25, 0.5]}, "salient.noise.sigmas", "must include 0"),
    # spuriosity
    ("spuriosity_cached", "default", {"spuriosity.sets": ["train", "val", "test", "bam_os_test"]}, "spuriosity.sets[3]",
     "'bam_os_test' is not in features.sets"),
    ("spuriosity_labelled", "default", {"spuriosity.sets": ["train", "val", "test", "cue_only"]}, "spuriosity.sets[3]",
     "'cue_only' is not a labelled image set"),
    ("spuriosity_heldout", "default", {"spuriosity.heldout_set": "cue_only"}, "spuriosity.heldout_set",
     "'cue_only' is not in spuriosity.sets"),
    ("spuriosity_gap", "default", {"spuriosity.gap_set": "train"}, "spuriosity.gap_set", "must differ from stats_set"),
    ("spuriosity_models", "default", {"spuriosity.models": ["nope"]}, "spuriosity.models[0]", "'nope' is not a key of models"),
    # npca
    ("npca_test_set", "default", {"npca.test_set": "holdout"}, "npca.test_set", "'holdout' is not an image set"),
    ("npca_cue_only_set", "default", {"npca.cue_only_set": "nope"}, "npca.cue_only_set", "'nope' is not an image set"),
    ("npca_pool", "default", {"npca.retrieval.pool_sets": ["test", "nope"]}, "npca.retrieval.pool_sets[1]",
     "'nope' is not an image set"),
    ("npca_test_labelled", "default", {"npca.test_set": "cue_only"}, "npca.test_set", "'cue_only' is not a labelled image set"),
    ("npca_human_csv", "default", {"salient.annotation.source": "human", "salient.annotation.human_csv": "a.csv",
                                   "npca.human_csv": "a.csv"}, "npca.human_csv", "the same file as salient.annotation.human_csv"),
    ("npca_folders", "folders", {"npca.human_csv": None}, "npca.human_csv", "components of a folder set"),
    ("npca_validation_labelled", "default", {"npca.retrieval.validation_set": "cue_only"}, "npca.retrieval.validation_set",
     "'cue_only' is not a labelled image set"),
    ("npca_validation_apart", "default", {"npca.retrieval.validation_set": "test"}, "npca.retrieval.validation_set",
     "must differ from npca.test_set"),
    # lightweight
    ("lightweight_cue", "default", {"lightweight.datasets.cue_table.pentagon.cue": "nope"},
     "lightweight.datasets.cue_table.pentagon.cue", "cue 'nope' is not defined in lightweight.datasets.cues"),
    ("lightweight_model", "default", {"models.robust_resnet10_lightweight": load_yaml("config.yaml")["models"]["erm_cbr_w8_s2"]},
     "models.robust_resnet10_lightweight", "the lightweight stage makes a model of this name"),
    ("model_family_name", "default", {"models.f_o": load_yaml("config.yaml")["models"]["erm_cbr_w8_s2"]}, "models.f_o",
     "'f_o' is also a bam model of this config"),
    # mitigation (group robustness)
    ("mitigation_no_benchmark", "folders", {"mitigation": load_yaml("config.yaml")["mitigation"]}, "mitigation.enabled",
     "runs on the planted-cue benchmark"),
    ("mitigation_val_set", "default", {"mitigation.val_set": "cue_only"}, "mitigation.val_set", "is not train, val or test"),
    ("mitigation_test_set", "default", {"mitigation.test_set": "counterfactual"}, "mitigation.test_set",
     "is not in spuriosity.sets"),
    ("mitigation_apart", "default", {"mitigation.val_set": "test"}, "mitigation.test_set",
     "must differ from mitigation.val_set"),
    ("mitigation_models", "default", {"spuriosity.models": ["robust_resnet10"]}, "mitigation.enabled", "no audited model"),
]  # fmt: skip


def _edited(base: str, edits: dict) -> dict:
    cfg = load_yaml("config.yaml" if base == "default" else "folders.yaml")
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        d = cfg
        for p in parents:
            d = d.setdefault(p, {})
        if value is DELETE:
            del d[last]
        else:
            d[last] = copy.deepcopy(value)
    return cfg


def _write(path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("base, edits, key, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_config_refuses_each_cross_key_error_naming_the_key(tmp_path, capsys, base, edits, key, fragment):
    bad = _write(tmp_path / "bad.yaml", _edited(base, edits))
    assert main(["validate-config", "-c", bad]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"spurlab: error: config key {key}: "), out.err
    assert fragment in out.err and out.err.count("\n") == 1, out.err


def _semantic_raise_lines() -> set[int]:
    """Line numbers of every `raise` in check_semantics and the `_check_*` functions it calls."""
    tree = ast.parse(inspect.getsource(config_module))
    lines = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (node.name == "check_semantics" or node.name.startswith("_check_")):
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, ast.Raise)}
    return lines


@pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (coverage, debugger) is already installed")
def test_every_cross_key_check_has_a_case():
    """Each `raise` of the semantic checks is reached by one of CASES (so a new check needs a case)."""
    hit: set[int] = set()
    src = config_module.__file__

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != src:
            return None
        if event == "line":
            hit.add(frame.f_lineno)
        return tracer

    for _, base, edits, _, _ in CASES:
        cfg = _edited(base, edits)
        sys.settrace(tracer)
        try:
            with pytest.raises(SpurlabError):
                validate_config(cfg)
        finally:
            sys.settrace(None)
    missed = sorted(_semantic_raise_lines() - hit)
    source = inspect.getsource(config_module).splitlines()
    assert not missed, "no case reaches: " + "; ".join(f"line {n}: {source[n - 1].strip()}" for n in missed)


def _fixture_configs() -> dict:
    from tests.reliability.test_workflow_reliability import reliability_config
    from tests.test_workflow_folders import override

    folders = load_yaml("folders.yaml")
    return {
        "reliability": reliability_config(),
        "workflow_folders": merge(folders, override({"arch": "resnet10_small"})),
        "tiny_no_optional_stages": {k: v for k, v in load_yaml("tiny.yaml").items()
                                    if k not in ("bam", "contamination", "posthoc", "lightweight", "interventions")},
    }  # fmt: skip


SHIPPED = [["config.yaml"], ["tiny.yaml"], ["folders.yaml"], ["folders.yaml", "imagenet.yaml"]]


def test_every_config_under_config_is_covered():
    configs = {p.name for p in (ROOT / "config").glob("*.yaml")}
    assert configs == {name for files in SHIPPED for name in files}


@pytest.mark.parametrize("files", SHIPPED, ids=["+".join(f) for f in SHIPPED])
def test_shipped_configs_pass_validate_config(files, capsys):
    assert main(["validate-config", "-c", *(str(ROOT / "config" / f) for f in files)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    check_semantics(load_config([ROOT / "config" / f for f in files]))


@pytest.mark.parametrize("name", ["reliability", "workflow_folders", "tiny_no_optional_stages"])
def test_fixture_configs_pass(name):
    check_semantics(validate_config(_fixture_configs()[name]))


def test_no_other_module_checks_a_config():
    """The Snakefile and its rule files raise nothing about the config themselves (the helpers they
    call at parse time are spurlab.config's)."""
    for path in sorted((ROOT / "rules").glob("*.smk")):
        text = path.read_text()
        assert "raise" not in text and "SpurlabError" not in text and "WorkflowError" not in text, path
    # the Snakefile's own: no `spurlab` on PATH, --config overrides, the config module's error, and
    # a rule whose command has no code hash (spurlab.io.code)
    raised = re.findall(r"raise WorkflowError\(\s*f?\"([^\"]{,20})", (ROOT / "Snakefile").read_text())
    assert raised == ["spurlab: the `spurla", "spurlab: --config KE", "spurlab: error: {e}", "spurlab: error: {e}"]


def test_snakefile_refuses_what_validate_config_refuses_with_the_same_line(tmp_path, capsys):
    """One dry run: the bad study signal stops Snakemake with validate-config's line."""
    bad = _write(tmp_path / "bad.yaml", _edited("default", {"posthoc.study.signal": "no_such_signal"}))
    assert main(["validate-config", "-c", bad]) == 2
    line = capsys.readouterr().err.strip()
    assert line == ("spurlab: error: config key posthoc.study.signal: 'no_such_signal' is not a contamination "
                    "signal (one of tag, stripe, blur)")  # fmt: skip
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([os.path.join(bin_dir, "snakemake"), "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
                        "--cores", "1", "--configfile", bad], capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode != 0
    assert line in r.stdout + r.stderr
    assert not (work / "results").exists()
