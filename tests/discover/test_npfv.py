"""NPFV (docs/methods.md#npfv): APGD stays in the eps ball and [0, 1], never ends below its start, reaches a
known optimum; the component score is alpha_l of docs/methods.md#class-wise-neural-pca; Grad-CAM maps are soft masks."""

import math

import numpy as np
import pytest
import torch

from spurlab.discover.npca import alphas, class_pca, weighted_features
from spurlab.discover.npfv import apgd_checkpoints, apgd_l2, component_score, gradcam, npfv, select_components
from spurlab.models.factory import build_classifier


def test_checkpoints_follow_croce_hein():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (+0.06 steps): N = 100
    assert apgd_checkpoints(100)[:5] == [22, 41, 57, 70, 80]
    assert all(0 < w < 100 for w in apgd_checkpoints(100))


def test_apgd_reaches_the_linear_optimum_inside_ball_and_box():
    """max <c, x - g> over ||x - g|| <= eps (box inactive for small eps): optimum eps ||c||."""
    torch.manual_seed(0)
    c = torch.randn(3, 3, 8, 8)
    g = torch.full_like(c, 0.5)
    eps = 0.5
    x, best, hist = apgd_l2(lambda x: ((x - g) * c).flatten(1).sum(1), g, eps, steps=30)
    opt = eps * c.flatten(1).norm(dim=1)
    assert (best >= 0.999 * opt).all() and (best <= opt + 1e-5).all()
    assert ((x - g).flatten(1).norm(dim=1) <= eps + 1e-5).all()
    assert (hist[1:] >= hist[:-1]).all()  # the best value never decreases


def test_apgd_box_constraint_binds():
    """A large eps: the box [0, 1] is what limits; the optimum of <c, x> is x = (c > 0)."""
    torch.manual_seed(1)
    c = torch.randn(2, 3, 4, 4)
    g = torch.full_like(c, 0.5)
    x, best, _ = apgd_l2(lambda x: (x * c).flatten(1).sum(1), g, eps=100.0, steps=20)
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(best.numpy(), c.clamp_min(0).flatten(1).sum(1).numpy(), rtol=1e-4)


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 16, {"width": 4}).eval()
    x = torch.rand(40, 3, 16, 16)
    with torch.no_grad():
        phi = model.features(x).double().numpy()
    W = model.head()[0].detach().double().numpy()
    mu, V, _ = class_pca(weighted_features(phi, W, 1), 6)
    return model, x, phi, W, mu, V


def test_component_score_is_alpha_and_npfv_respects_constraints(toy):
    model, x, phi, W, mu, V = toy
    score = component_score(model, W, [1] * 3, [mu] * 3, V[:3])
    with torch.no_grad():
        got = score(x[:3]).double().numpy()
    want = alphas(weighted_features(phi[:3], W, 1), mu, V[:3])[np.arange(3), np.arange(3)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    eps = 30.0 * 16 / 224  # docs/methods.md#npfv: eps 30 at 224, scaled by sqrt(H W)
    z, best, start = npfv(model, W, [1, 1, 1], [mu] * 3, V[:3], 16, eps, steps=15)
    assert z.min() >= 0 and z.max() <= 1
    assert ((z - 0.5).flatten(1).norm(dim=1) <= eps * (1 + 1e-5)).all()
    assert (best >= start).all() and (best > start + 1e-6).any()  # the attack raised alpha
    with torch.no_grad():
        np.testing.assert_allclose(score(z).numpy(), best.numpy(), rtol=1e-4, atol=1e-5)


def test_gradcam_maps_are_soft_masks(toy):
    model, x, _, W, mu, V = toy
    score = component_score(model, W, [1] * 4, [mu] * 4, [V[0]] * 4)
    cam = gradcam(score, x[:4])
    assert cam.shape == (4, 16, 16) and cam.min() >= 0 and cam.max() <= 1
    assert all(math.isclose(float(m.max()), 1.0, abs_tol=1e-6) or float(m.max()) == 0 for m in cam)


def test_selection_keeps_the_most_confident():
    assert select_components([0.1, 0.9, 0.5, 0.9], 3).tolist() == [1, 3, 2]
