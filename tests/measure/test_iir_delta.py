"""IIR's functionally similar delta (docs/methods.md#bam-metrics, Yang & Kim app. A): small output change, inside the
patch mask, range penalty with the correct sign."""

import numpy as np
import pytest
import torch

from spurlab.data.sets import build_plan
from spurlab.measure.iir_delta import DeltaSettings, delta_loss, optimise_delta
from spurlab.models import build_classifier
from tests.data.test_synth import collect


@pytest.fixture(scope="module")
def pair():
    from tests.conftest import load_yaml

    cfg = load_yaml("tiny.yaml")
    os_ = collect(build_plan(cfg, "bam_os_test")[0])
    zs = collect(build_plan(cfg, "bam_0s_test")[0])
    f = lambda a: torch.from_numpy(a[:4]).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    x = f(zs["images"])
    return x, f(os_["images"]) - x, torch.from_numpy(os_["masks"]["object"][:4]).float()


def test_delta_keeps_the_output_and_stays_inside_the_mask(pair):
    x, d0, mask = pair
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    delta, info = optimise_delta(model, x, d0, mask, DeltaSettings(steps=15, step_size=0.03))
    assert info["output_change"].mean() < 0.6 * info["output_change_start"].mean()
    assert info["output_change"].max() < 0.05  # ||f(x+delta) - f(x)|| small next to ||f(x)||
    outside = (1 - mask)[:, None].expand_as(delta)
    assert float((delta * outside).abs().max()) == 0 and info["outside_mask_max"].max() == 0
    z = x + delta
    assert float(z.min()) >= 0 and float(z.max()) <= 1
    # delta stays a visible object, not zero (the -eta1 ||delta|| term)
    assert (info["delta_norm"] > 0.5 * d0.flatten(1).norm(dim=1).numpy()).all()
    # the model's parameters got no gradients from the optimisation
    assert all(p.grad is None for p in model.parameters())


def test_range_penalty_pulls_back_into_the_valid_range(pair):
    """The public script's sign rewarded leaving [0, 1]; here leaving it costs."""
    x, d0, mask = pair
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    s = DeltaSettings(eta1=0.0, eta2=10.0)
    with torch.no_grad():
        fx = model(x)
        inside = delta_loss(model, x, torch.zeros_like(x), fx, s)
        beyond = delta_loss(model, x, torch.full_like(x, 2.0) - x, fx, DeltaSettings(eta1=0.0, eta2=0.0))
        beyond_pen = delta_loss(model, x, torch.full_like(x, 2.0) - x, fx, s)
    assert (inside == 0).all()
    np.testing.assert_allclose((beyond_pen - beyond).numpy(), 10.0 * 3 * 32 * 32, rtol=1e-5)


def test_max_change_bounds_the_distance_from_the_object(pair):
    x, d0, mask = pair
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    delta, _ = optimise_delta(model, x, d0, mask, DeltaSettings(steps=10, step_size=0.1, max_change=0.05))
    start = (d0 * mask[:, None]).flatten(1)
    moved = (delta.flatten(1) - start).norm(dim=1)
    # the final clip to [0, 1] can only shorten the step
    assert (moved <= 0.05 * start.norm(dim=1) + 1e-4).all()
