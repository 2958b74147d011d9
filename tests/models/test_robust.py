"""L2 PGD (docs/methods.md#models): inside the ball, inside the image box, raises the loss, reproducible,
leaves the model's mode and gradients alone."""

import math

import pytest
import torch
import torch.nn.functional as F

from spurlab.errors import SpurlabError
from spurlab.models import build_classifier
from spurlab.models.robust import l2_pgd, project_l2, scale_eps


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_classifier("cbr_tiny", 4, 32, {"width": 4}).eval()


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_scale_eps():
    assert scale_eps(3.0, 224, 224) == pytest.approx(3.0)
    assert scale_eps(3.0, 64, 64) == pytest.approx(3.0 * 64 / 224)
    assert scale_eps(3.0, 32, 64) == pytest.approx(3.0 * math.sqrt(32 * 64) / 224)


def test_project_l2_only_shrinks_what_is_outside_the_ball():
    d = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(project_l2(d, 1.0), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_the_ball_and_box_and_raises_the_loss(model, random_start):
    torch.manual_seed(1)
    x = torch.rand(8, 3, 32, 32)
    x[:2] = x[:2].round()  # saturated pixels: the box constraint binds
    y = torch.randint(0, 4, (8,))
    eps = 0.5
    adv = l2_pgd(model, x, y, eps=eps, step_size=0.2, steps=5, random_start=random_start, generator=seeded(0))
    norms = (adv - x).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all() and norms.min() > 0.5 * eps
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        before = F.cross_entropy(model(x), y, reduction="none")
        after = F.cross_entropy(model(adv), y, reduction="none")
    assert after.mean() > before.mean() and (after >= before - 1e-6).float().mean() > 0.9


def test_random_start_is_in_the_ball_near_its_surface(model):
    """Uniform in a d-dimensional ball: radius eps * U^(1/d), i.e. almost always close to eps."""
    x = torch.full((16, 3, 32, 32), 0.5)  # far from the box edges: no clipping
    y = torch.zeros(16, dtype=torch.long)
    adv = l2_pgd(model, x, y, eps=0.3, step_size=0.1, steps=0, random_start=True, generator=seeded(0))
    norms = (adv - x).flatten(1).norm(dim=1)
    assert (norms <= 0.3 + 1e-6).all() and (norms > 0.29).all()
    assert torch.equal(l2_pgd(model, x, y, 0.3, 0.1, 0, random_start=False), x)


def test_pgd_is_reproducible_with_a_seeded_generator(model):
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    a = l2_pgd(model, x, y, 0.5, 0.2, 3, True, seeded(7))
    b = l2_pgd(model, x, y, 0.5, 0.2, 3, True, seeded(7))
    c = l2_pgd(model, x, y, 0.5, 0.2, 3, True, seeded(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pgd_leaves_mode_and_parameter_gradients_alone(model):
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    for train in (False, True):
        model.train(train)
        l2_pgd(model, x, y, 0.5, 0.2, 2, generator=seeded(0))
        assert model.training == train and all(p.grad is None for p in model.parameters())


def test_bad_budget_is_an_error(model):
    with pytest.raises(SpurlabError, match="l2_pgd: eps -1"):
        l2_pgd(model, torch.rand(1, 3, 32, 32), torch.tensor([0]), -1, 0.1, 1)
