"""Lightweight discovery (docs/methods.md#lightweight-discovery): the second task's sets and the linear head on frozen features."""

import numpy as np
import pytest
import torch

from spurlab.config import check_semantics, lightweight_datasets, lightweight_model, set_names, validate_config
from spurlab.data.sets import build_plan
from spurlab.discover.linear_head import HeadSettings, fit_linear_head
from spurlab.errors import SpurlabError


def test_second_task_replaces_classes_and_cue_table_and_keeps_the_rest(default_cfg):
    ds = lightweight_datasets(default_cfg)
    lw = default_cfg["lightweight"]["datasets"]
    assert ds["classes"] == lw["classes"] and ds["cue_table"] == lw["cue_table"]
    assert ds["n_images"]["train"] == lw["n_images"]["train"] and ds["scenes"] == default_cfg["datasets"]["scenes"]
    assert ds["cues"] == default_cfg["datasets"]["cues"]
    assert {"lightweight_train", "lightweight_test"} <= set(set_names(default_cfg))
    assert lightweight_model(default_cfg) == [f"{default_cfg['salient']['model']}_lightweight"]


def test_second_task_sets_use_its_classes_and_seed(tiny_cfg):
    plan, attrs = build_plan(tiny_cfg, "lightweight_train")
    assert attrs["class_names"] == tiny_cfg["lightweight"]["datasets"]["classes"]
    assert attrs["seed"] == tiny_cfg["lightweight"]["seed"] and attrs["set_name"] == "lightweight_train"
    rec = next(iter(plan.chunks(1)))
    assert rec["labels"].max() < len(attrs["class_names"])


def test_second_task_is_checked_like_datasets(tiny_cfg):
    tiny_cfg["lightweight"]["datasets"]["cue_table"]["ring"] = {"cue": "no_such_cue", "p_in_class": 0.5,
                                                              "p_elsewhere": 0.1}  # fmt: skip
    with pytest.raises(SpurlabError, match=r"lightweight\.datasets\.cue_table\.ring\.cue"):
        check_semantics(validate_config(tiny_cfg))


def test_linear_head_fits_separable_features_and_is_deterministic():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    feats = rng.normal(size=(300, 8)).astype(np.float32)
    feats[np.arange(300), labels] += 4.0  # class c lights up feature c
    settings = HeadSettings(epochs=10, batch_size=64)
    W, b, history = fit_linear_head(feats, labels, 3, settings, seed=0)
    assert W.shape == (3, 8) and b.shape == (3,)
    assert history[-1]["train_acc"] > 0.95 and history[-1]["loss"] < history[0]["loss"]
    assert torch.equal(W.argmax(1), torch.arange(3))  # each class weighs its own feature most
    W2, b2, _ = fit_linear_head(feats, labels, 3, settings, seed=0)
    assert torch.equal(W, W2) and torch.equal(b, b2)
    with pytest.raises(ValueError, match="adam or sgd"):
        fit_linear_head(feats, labels, 3, HeadSettings(optimizer="lbfgs"))
