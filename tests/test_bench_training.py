"""bench/training.py (issue #34, point 2): the training-throughput bench runs the suite's own epoch
loop for every variant it compares, its `nchw` variant the loop before channels_last."""

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


def test_nchw_variant_restores_todays_batches():
    import spurlab.train as train

    today = train.to_device
    x = torch.rand(2, 3, 8, 8)
    with bt.nchw_batches():
        assert train.to_device(x, torch.device("cpu"), training=True).is_contiguous()
    assert train.to_device is today
    with pytest.raises(ValueError, match="variant 'fast'"):
        bt.epoch_seconds({}, "m", "fast", 8, 1)


@pytest.mark.parametrize("name,variant", [("erm_tiny", "nchw"), ("robust_tiny", "channels_last")])
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
