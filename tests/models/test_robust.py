"""L2 PGD: inside the ball, inside the image box, raises the loss, reproducible."""

import math

import pytest
import torch
import torch.nn.functional as F

from spurlab.models import build_classifier
from spurlab.models.robust import l2_pgd, scale_eps


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_classifier("cbr_tiny", 4, 32, {"width": 8}).eval()


def test_scale_eps():
    assert scale_eps(3.0, 224, 224) == pytest.approx(3.0)
    assert scale_eps(3.0, 64, 64) == pytest.approx(3.0 * 64 / 224)
    assert scale_eps(3.0, 32, 64) == pytest.approx(3.0 * math.sqrt(32 * 64) / 224)


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_the_ball_and_box_and_raises_the_loss(model, random_start):
    x = torch.rand(16, 3, 32, 32)
    y = torch.randint(0, 4, (16,))
    eps = 0.5
    adv = l2_pgd(model, x, y, eps=eps, step_size=0.2, steps=5, random_start=random_start, generator=torch.Generator().manual_seed(0))
    norms = (adv - x).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all() and norms.max() > 0.5 * eps
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_pgd_is_reproducible_with_a_seeded_generator(model):
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    a = l2_pgd(model, x, y, 0.5, 0.2, 3, True, torch.Generator().manual_seed(7))
    b = l2_pgd(model, x, y, 0.5, 0.2, 3, True, torch.Generator().manual_seed(7))
    c = l2_pgd(model, x, y, 0.5, 0.2, 3, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
