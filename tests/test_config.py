"""Config validation: unknown keys, bad types and cross-key errors name the key path."""

import copy
import re
import subprocess

import pytest
import yaml

from spurlab.config import (
    bam_attribution_parts,
    bam_model_sets,
    bam_models,
    bam_part_inputs,
    load_config,
    merge,
    model_families,
    model_family,
    posthoc_model_sets,
    posthoc_models,
    posthoc_test_sets,
    validate_config,
)
from spurlab.errors import SpurlabError
from tests.conftest import ROOT, spurlab_exe


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml"])
def test_shipped_configs_are_valid(name):
    load_config(ROOT / "config" / name)


def test_default_benchmark_has_the_collision_and_the_training_lengths_it_documents():
    """The default: hexagon shares disk's water at a lower rate (the negative-gap collision), the
    ERM models train 10 epochs, the robust discovery model 6."""
    cfg = load_config(ROOT / "config" / "config.yaml")
    table = cfg["datasets"]["cue_table"]
    assert table["hexagon"] == {"cue": "water_bg", "p_in_class": 0.5, "p_elsewhere": 0.04}
    assert table["disk"]["cue"] == "water_bg" and table["disk"]["p_in_class"] > table["hexagon"]["p_in_class"]
    assert cfg["datasets"]["cues"]["feeder"]["size"] == 0.3
    assert cfg["train"]["epochs"] == 10 and cfg["models"]["robust_resnet10"]["train"] == {"epochs": 6}
    assert not (ROOT / "config" / "collision.yaml").exists()


def _set(cfg, path, value):
    *parents, last = path
    for p in parents:
        cfg = cfg.setdefault(p, {})
    cfg[last] = value


def _delete(cfg, path):
    *parents, last = path
    for p in parents:
        cfg = cfg[p]
    del cfg[last]


BAD = [
    # (what to change, value, expected message fragment)
    (("bogus",), 1, "config key bogus: unknown key"),
    (("datasets", "n_image"), 1, "config key datasets.n_image: unknown key"),
    (("datasets", "cues", "feeder", "colour"), [1, 0, 0], "config key datasets.cues.feeder.colour: unknown key"),
    (("datasets", "cue_table", "disk", "p_in"), 0.5, "config key datasets.cue_table.disk.p_in: unknown key"),
    (("datasets", "image_size"), "64", "config key datasets.image_size: '64' is not of type 'integer'"),
    (("datasets", "n_images", "train"), -5, "config key datasets.n_images.train: -5 is less than the minimum of 1"),
    (("datasets", "cue_table", "disk", "p_in_class"), 1.5, "config key datasets.cue_table.disk.p_in_class: 1.5 is greater than the maximum of 1"),
    (("datasets", "cue_table", "disk", "p_elsewhere"), -0.1, "config key datasets.cue_table.disk.p_elsewhere: -0.1 is less than the minimum of 0"),
    (("datasets", "cues", "feeder", "type"), "sticker", "config key datasets.cues.feeder.type: 'sticker' is not one of"),
    (("datasets", "cue_table", "octagon"), {"cue": "feeder", "p_in_class": 0.9, "p_elsewhere": 0.04},
     "config key datasets.cue_table.octagon: class 'octagon' is not in datasets.classes"),
    (("datasets", "cue_table", "disk", "cue"), "nope", "config key datasets.cue_table.disk.cue: cue 'nope' is not defined"),
    (("datasets", "cue_table", "ring", "p_elsewhere"), 0.2, "config key datasets.cue_table.ring.p_elsewhere: cue 'hospital_tag' is shared"),
    (("datasets", "classes"), ["disk", "blob"], "config key datasets.classes[1]: unknown shape 'blob'"),
    (("datasets", "counterfactual_control_cue"), "feeder", "must be one no class is trained with"),
    (("bam", "common_object"), "dog", "config key bam.common_object: 'dog' is not in bam.objects"),
    (("bam", "scale_rule"), "bigger", "config key bam.scale_rule: 'bigger' is not one of"),
    (("contamination", "aligned_class"), "cat", "config key contamination.aligned_class: 'cat' is not in datasets.classes"),
    (("models", "erm_cbr_w8_s2", "train_set"), "cue_only", "config key models.erm_cbr_w8_s2.train_set: 'cue_only' is not a labelled image set"),
    (("models", "erm_cbr_w8_s2", "train", "lr"), -1, "config key models.erm_cbr_w8_s2.train.lr: -1 is less than or equal to the minimum of 0"),
    (("models", "erm_cbr_w8_s2", "train", "augmentation"), {}, "config key models.erm_cbr_w8_s2.train.augmentation: unknown key"),
    (("models", "robust_resnet10", "robust", "eps"), 3, "config key models.robust_resnet10.robust.eps: unknown key"),
    (("models", "imported"), {"arch": "resnet50", "seed": 1, "checkpoint": {"path": "x.pt", "layout": "madry", "num_classes": 1000}},
     "config key models.imported.seed: an imported model (checkpoint) is not trained"),
    (("models", "nothing"), {"arch": "cbr_tiny"}, "config key models.nothing: 'train_set' is required for a trained model"),
    (("models", "imported"), {"arch": "resnet50", "init_checkpoint": "w.pt", "checkpoint": {"path": "x.pt", "layout": "madry", "num_classes": 1000}},
     "config key models.imported.init_checkpoint: an imported model (checkpoint) is not trained"),
    (("models", "erm_cbr_w8_s2", "arch_args", "checkpoint_path"), "w.pt",
     "config key models.erm_cbr_w8_s2.arch_args.checkpoint_path: not an architecture argument"),
    (("posthoc", "arch_args", "checkpoint_path"), "w.pt", "config key posthoc.arch_args.checkpoint_path: not an architecture argument"),
    (("models", "erm_cbr_w8_s2", "init_checkpoint"), "", "config key models.erm_cbr_w8_s2.init_checkpoint: '' should be non-empty"),
    (("features", "sets"), ["train", "holdout"], "config key features.sets[1]: 'holdout' is not an image set"),
    (("compute", "device"), "tpu", "config key compute.device: 'tpu' is not one of"),
    (("datasets", "object", "rotation"), 270, "config key datasets.object.rotation: 270 is greater than the maximum of 180"),
    (("npca", "retrieval", "validation_set"), "test", "config key npca.retrieval.validation_set: must differ from npca.test_set"),
    (("npca", "retrieval", "validation_set"), "holdout", "config key npca.retrieval.validation_set: 'holdout' is not a labelled image set"),
    (("npca", "retrieval", "validation_set"), "cue_only", "config key npca.retrieval.validation_set: 'cue_only' is not a labelled image set"),
    (("npca", "retrieval", "harmful_fraction"), 1.5, "config key npca.retrieval.harmful_fraction: 1.5 is greater than the maximum of 1"),
]  # fmt: skip


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(b[0]) for b in BAD])
def test_bad_config_names_the_key(default_cfg, path, value, message):
    cfg = copy.deepcopy(default_cfg)
    _set(cfg, path, value)
    with pytest.raises(SpurlabError) as e:
        validate_config(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_key_is_named(default_cfg):
    _delete(default_cfg, ("datasets", "pixel_noise"))
    with pytest.raises(SpurlabError, match=r"config key datasets: 'pixel_noise' is a required property"):
        validate_config(default_cfg)


def test_merge_is_recursive_like_snakemake():
    assert merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}


def test_later_config_files_override_earlier(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"seed": 7, "datasets": {"n_images": {"train": 10}}}))
    cfg = load_config([ROOT / "config" / "tiny.yaml", over])
    assert cfg["seed"] == 7 and cfg["datasets"]["n_images"]["train"] == 10 and cfg["datasets"]["n_images"]["val"] == 80


def test_cli_rejects_bad_config_with_one_line_and_writes_nothing(tmp_path, default_cfg):
    _set(default_cfg, ("datasets", "cue_table", "disk", "p_in_class"), 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(default_cfg))
    out = tmp_path / "results" / "train.h5"
    r = subprocess.run([spurlab_exe(), "make-set", "-c", str(bad), "--set", "train", "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("spurlab: error: config key datasets.cue_table.disk.p_in_class")
    assert not (tmp_path / "results").exists()
    r = subprocess.run(
        [spurlab_exe(), "validate-config", "-c", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "missing.yaml: config file not found" in r.stderr
    bad.write_text("datasets: [unclosed")
    r = subprocess.run([spurlab_exe(), "validate-config", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "bad.yaml: not valid YAML" in r.stderr and r.stderr.count("\n") == 1


# ------------------------------------------------------------------ real-data configs (no benchmark)


@pytest.fixture
def folders_cfg():
    return load_config(ROOT / "config" / "folders.yaml")


def test_real_data_configs_are_valid_and_generate_nothing(folders_cfg):
    from spurlab.config import generated_sets, set_names, trained_models

    imagenet = load_config([ROOT / "config" / "folders.yaml", ROOT / "config" / "imagenet.yaml"])
    for cfg in (folders_cfg, imagenet):
        assert generated_sets(cfg) == [] and trained_models(cfg) == []
        assert set_names(cfg) == ["images_train", "images_val", "images_cue_only"]
        assert not {"datasets", "bam", "contamination", "posthoc", "lightweight", "train"} & set(cfg)
    assert imagenet["compute"]["class_shards"] == 50 and imagenet["salient"]["annotation"]["min_coverage"] == 0.5


REAL_BAD = [
    (("npca", "cue_only_set"), "cue_only", "npca.cue_only_set: 'cue_only' is not an image set"),
    (("npca", "test_set"), "test", "npca.test_set: 'test' is not an image set"),
    (("npca", "retrieval", "pool_sets"), ["images_val", "val"], "npca.retrieval.pool_sets[1]: 'val'"),
    (("spuriosity", "sets"), ["images_train", "train"], "spuriosity.sets[1]: 'train' is not in features.sets"),
    (("salient", "subset_set"), "test", "salient.subset_set: 'test' is not in features.sets"),
    (("salient", "annotation", "source"), "auto", "salient.annotation.source: 'auto' scores feature maps"),
    (("npca", "human_csv"), "data/answers/salient.csv", "npca.human_csv: the same file"),
    (("posthoc",), "as in config.yaml", "posthoc.enabled: the posthoc stage runs on the planted-cue benchmark"),
    (("contamination",), "as in config.yaml", "contamination.enabled: the contamination stage runs on"),
    (
        ("models", "mine"),
        {"arch": "resnet18", "train_set": "images_train", "seed": 0},
        "train: required for the trained model",
    ),
]


@pytest.mark.parametrize("path, value, message", REAL_BAD, ids=[".".join(c[0]) for c in REAL_BAD])
def test_real_data_config_refuses_what_it_does_not_define(folders_cfg, path, value, message):
    cfg = copy.deepcopy(folders_cfg)
    if value == "as in config.yaml":  # a whole benchmark section, switched on
        value = load_config(ROOT / "config" / "config.yaml")[path[0]]
    _set(cfg, path, value)
    with pytest.raises(SpurlabError, match="config key " + re.escape(message.split(":")[0])) as e:
        validate_config(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_npca_on_folders_needs_human_answers_or_a_published_list(folders_cfg):
    cfg = copy.deepcopy(folders_cfg)
    cfg["npca"]["human_csv"] = None
    with pytest.raises(SpurlabError, match=r"config key npca\.human_csv: components of a folder set"):
        validate_config(cfg)
    cfg["npca"]["published_components"] = "data/spurious_components.npy"
    validate_config(cfg)


def test_bam_and_posthoc_models_and_their_sets(tiny_cfg):
    cfg = tiny_cfg
    assert bam_models(cfg) == ["f_o", "f_s", "f_k030", "f_k100"]
    assert bam_model_sets("f_s") == ("bam_os_train", "bam_os_test", "scene_label")
    assert bam_model_sets("f_k030") == ("bam_k030_train", "bam_k030_test", None)
    assert bam_attribution_parts(cfg) == ["contrast", "k030", "k100", "iir"]
    assert bam_part_inputs(cfg, "k030") == {"models": ["f_k030"], "sets": ["bam_k030_test"]}
    assert posthoc_models(cfg) == ["normal", "spurious_tag", "spurious_blur"]  # in the order of contamination.signals
    assert posthoc_model_sets(cfg, "spurious_blur") == ("contam_blur_train", "contam_clean_test")
    assert posthoc_test_sets(cfg) == ["contam_clean_test", "contam_tag_test", "contam_blur_test"]
    for bad, call in (("f_x", lambda: bam_model_sets("f_x")), ("spurious_x", lambda: posthoc_model_sets(cfg, "spurious_x")),
                      ("k500", lambda: bam_part_inputs(cfg, "k500"))):  # fmt: skip
        with pytest.raises(SpurlabError, match=bad):
            call()


def test_every_trained_model_has_one_family_and_a_suite_model_takes_no_other_familys_name(tiny_cfg):
    families = model_families(tiny_cfg)
    assert families["suite"] == ["robust_tiny", "erm_tiny"]
    assert {model_family(tiny_cfg, m) for f, names in families.items() for m in names if f == "bam"} == {"bam"}
    assert model_family(tiny_cfg, "normal") == "posthoc" and model_family(tiny_cfg, "erm_tiny") == "suite"
    off = copy.deepcopy(tiny_cfg)
    off["bam"]["enabled"] = False
    with pytest.raises(SpurlabError, match="model 'f_o': not a trained model of this config"):
        model_family(off, "f_o")
    bad = copy.deepcopy(tiny_cfg)
    bad["models"]["normal"] = bad["models"]["erm_tiny"]
    with pytest.raises(SpurlabError, match="config key models.normal: 'normal' is also a posthoc model"):
        validate_config(bad)
