"""Feature attack (docs/methods.md#feature-attack): raises the feature, stays in [0, 1] and inside the L2 budget."""

import math

import pytest
import torch

from spurlab.discover.attack import AttackSettings, feature_attack
from spurlab.models.factory import build_classifier


def test_presets_scale_with_image_size():
    paper = AttackSettings.for_image_size("paper", 224, 224)
    assert (paper.step, paper.iterations, paper.rho) == (40.0, 25, 500.0)
    small = AttackSettings.for_image_size("paper", 64, 64)
    assert small.step == pytest.approx(40 * 64 / 224) and small.rho == pytest.approx(500 * 64 / 224)
    code = AttackSettings.for_image_size("code", 224, 224)
    assert (code.step, code.iterations, code.rho) == (10.0, 100, None)
    with pytest.raises(ValueError, match="preset"):
        AttackSettings.for_image_size("strong", 64, 64)


@pytest.mark.parametrize("rho", [0.5, None])
def test_attack_increases_the_feature_and_respects_budget(rho):
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    x = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    with torch.no_grad():  # a feature that is zero (dead ReLU) on an image has no gradient: take active ones
        feats = model.features(x).argsort(1)[:, -3].tolist()
    settings = AttackSettings(step=0.5, iterations=10, rho=rho)
    adv = feature_attack(model, x, feats, settings)
    with torch.no_grad():
        before = model.features(x)[range(4), feats]
        after = model.features(adv)[range(4), feats]
    assert (after > before).all()
    assert adv.min() >= 0 and adv.max() <= 1
    norms = (adv - x).flatten(1).norm(dim=1)
    if rho is not None:
        assert (norms <= rho + 1e-5).all()
    else:
        assert norms.max() > 0.5  # unprojected steps go further than the budget above
    assert math.isfinite(float(norms.sum()))
