"""The attribution registry (docs/methods.md#attribution-methods): every method through captum with the papers' settings."""

import numpy as np
import pytest
import torch
from torch import nn

from spurlab.attribution import METHODS, AttributionModel, AttributionSettings, attribute, attribute_batched
from spurlab.errors import SpurlabError
from spurlab.models import build_classifier

FAST = AttributionSettings(smoothgrad_samples=3, ig_steps=32, ig_sg_samples=2, ig_sg_steps=3, batch_size=8)
S = 16  # image side: small and fast; cbr_tiny keeps a 1x1 map, enough for Grad-CAM


@pytest.fixture(scope="module")
def am():
    torch.manual_seed(0)
    return AttributionModel(build_classifier("cbr_tiny", 3, S, {"width": 4}))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, S, S, generator=g), torch.tensor([0, 1, 2, 0])


def test_every_method_returns_maps_of_the_image_shape(am, batch):
    x, t = batch
    for m in METHODS:
        a = attribute(am, x, t, m, FAST, seed=0)
        assert a.shape[0] == 4 and a.shape[-2:] == (S, S) and a.shape[1] in (1, 3), m
        assert torch.isfinite(a).all(), m


def test_gradient_is_the_signed_input_gradient_and_gxi_its_product(am, batch):
    x, t = batch
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(am(xg).gather(1, t[:, None]).sum(), xg)
    g = attribute(am, x, t, "gradient", FAST)
    torch.testing.assert_close(g, grad)
    assert (g < 0).any()  # abs=False: signs are kept (captum's default would drop them)
    torch.testing.assert_close(attribute(am, x, t, "gradient_x_input", FAST), grad * x)


def test_integrated_gradients_completeness_from_black(am, batch):
    """Sundararajan et al., Prop. 1: attributions sum to f(x) - f(black)."""
    x, t = batch
    ig = attribute(am, x, t, "integrated_gradients", FAST)
    with torch.no_grad():
        gap = (am(x) - am(torch.zeros_like(x))).gather(1, t[:, None]).squeeze(1)
    np.testing.assert_allclose(ig.sum((1, 2, 3)).numpy(), gap.numpy(), rtol=0.05, atol=0.02)


def test_smoothgrad_is_seeded_and_noisy_at_the_paper_sigma(am, batch):
    x, t = batch
    a, b = attribute(am, x, t, "smoothgrad", FAST, seed=3), attribute(am, x, t, "smoothgrad", FAST, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, attribute(am, x, t, "smoothgrad", FAST, seed=4))
    assert not torch.allclose(a, attribute(am, x, t, "gradient", FAST))


def test_gradcam_applies_the_relu(am, batch):
    x, t = batch
    cam = attribute(am, x, t, "gradcam", FAST)
    assert cam.shape[1] == 1 and float(cam.min()) >= 0


def test_gradcam_layer_is_an_earlier_finer_map():
    """At 16 px cbr_tiny's pre-pool map is 1x1 (a constant map); blocks.1 is 4x4 and localises."""
    from captum.attr import LayerGradCam

    torch.manual_seed(0)
    am = AttributionModel(build_classifier("cbr_tiny", 3, S, {"width": 4}))
    x, t = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1])
    default = attribute(am, x, t, "gradcam", FAST)
    finer = AttributionSettings(**{**FAST.record(), "gradcam_layer": "blocks.1"})
    cam = attribute(am, x, t, "gradcam", finer)
    assert cam.shape == default.shape and float(cam.min()) >= 0
    assert torch.allclose(default, default[..., :1, :1].expand_as(default))  # 1x1, upsampled: flat
    raw = LayerGradCam(am, am.clf.net.blocks[1]).attribute(x, target=t, relu_attributions=True)
    assert raw.shape[-2:] == (4, 4)
    assert torch.isfinite(cam).all()
    assert not torch.allclose(cam, cam[..., :1, :1].expand_as(cam))  # it varies over the image
    assert finer.record()["gradcam_layer"] == "blocks.1"
    with pytest.raises(SpurlabError, match="gradcam_layer 'blocks.9'"):
        attribute(am, x, t, "gradcam", AttributionSettings(gradcam_layer="blocks.9"))


def test_guided_backprop_is_refused_on_non_relu_models(batch):
    x, t = batch
    torch.manual_seed(0)
    clf = build_classifier("cbr_tiny", 3, S, {"width": 4})
    for block in clf.net.blocks:
        block[2] = nn.GELU()
    gelu = AttributionModel(clf)
    for m in ("guided_backprop", "guided_gradcam"):
        with pytest.raises(SpurlabError, match="non-ReLU"):
            attribute(gelu, x, t, m, FAST)
    attribute(gelu, x, t, "gradient", FAST)  # the others still work


def test_batched_results_do_not_depend_on_batch_composition(am):
    rng = np.random.default_rng(0)
    imgs = (rng.random((6, S, S, 3)) * 255).astype(np.uint8)
    targets = np.array([0, 1, 2, 0, 1, 2])
    full = {s: o for s, o in attribute_batched(am, imgs, targets, ["gradient", "smoothgrad"], FAST, seed=1)}
    again = {s: o for s, o in attribute_batched(am, imgs, targets, ["gradient", "smoothgrad"], FAST, seed=1)}
    for s in full:
        for m in full[s]:
            assert torch.equal(full[s][m], again[s][m])  # same seed, same bytes


def test_unknown_method_and_bad_settings_fail_clearly(am, batch):
    x, t = batch
    with pytest.raises(SpurlabError, match="attribution method 'lime'"):
        attribute(am, x, t, "lime", FAST)
    with pytest.raises(SpurlabError, match="ig_method"):
        AttributionSettings(ig_method="simpson")


def test_attribution_model_leaves_the_original_untouched():
    torch.manual_seed(0)
    clf = build_classifier("resnet10_small", 3, 32, {"width": 4})
    am = AttributionModel(clf)
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in clf.modules())  # timm's in-place ReLUs
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in am.modules())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(am(x), clf.eval()(x))
    attribute(am, x, torch.tensor([0, 1]), "guided_gradcam", FAST)
