"""bench/training.py (issue #34, point 2): the training-throughput bench runs the suite's own epoch
loop for every variant it compares, and its channels_last wrapper computes the same function."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench_training", ROOT / "bench" / "training.py")
bt = importlib.util.module_from_spec(_spec)
sys.modules["bench_training"] = bt
_spec.loader.exec_module(bt)


def test_channels_last_wrapper_is_the_same_function():
    from spurlab.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("resnet10_small", 10, 32, {"width": 8}).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        wrapped = bt.ChannelsLast(model).eval()(x)
    assert torch.allclose(plain, wrapped, atol=1e-5)


@pytest.mark.parametrize("name,variant", [("erm_tiny", "eager"), ("robust_tiny", "channels_last")])
def test_epochs_are_timed_with_the_suites_loop(name, variant):
    """Two epochs of tiny.yaml's models (the robust one with its PGD steps) on 64 rendered images:
    one warm-up, one measured, both timed; the images come from the config's world."""
    from spurlab.config import load_config

    cfg = load_config(ROOT / "config" / "tiny.yaml")
    data = bt.rendered_batches(cfg, 64)
    assert len(data) == 64 and data.x.dtype == torch.uint8 and data.image_size == cfg["datasets"]["image_size"]
    assert set(data.y.tolist()) == set(range(len(cfg["datasets"]["classes"])))
    measured, warm = bt.epoch_seconds(cfg, name, variant, 64, threads=1)
    assert measured > 0 and warm > 0
