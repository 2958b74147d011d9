"""`cbr_tiny` (Adebayo et al. 2022's small DNN, registered in timm): feature map shapes, the timm
API's identity forward = forward_head(forward_features), widths, refusals."""

import pytest
import timm
import torch

import spurlab.models  # noqa: F401  (registers the local architectures)
from spurlab.errors import SpurlabError
from spurlab.models.cbr import CBR, timm_model_kwargs


@pytest.mark.parametrize(("size", "pool_last", "side"), [(32, False, 2), (64, False, 4), (32, True, 1)])
def test_feature_map_shape(size, pool_last, side):
    torch.manual_seed(0)
    model = CBR(num_classes=5, width=4, pool_last=pool_last).eval()
    x = torch.randn(2, 3, size, size)
    f = model.forward_features(x)
    assert f.shape == (2, 32, side, side) and model.num_features == 32  # 8w channels
    assert model(x).shape == (2, 5)


def test_forward_is_head_of_features_and_pre_logits_feed_the_classifier():
    torch.manual_seed(0)
    model = timm.create_model("cbr_tiny", num_classes=3, width=4, drop_rate=0.5).train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    full = model(x)
    torch.manual_seed(1)
    split = model.forward_head(model.forward_features(x))
    torch.manual_seed(1)
    pre = model.get_classifier()(model.forward_head(model.forward_features(x), pre_logits=True))
    assert torch.equal(full, split) and torch.equal(full, pre)  # dropout included, in training mode
    model.eval()
    pooled = model.forward_features(x).mean(dim=(2, 3))
    assert torch.allclose(model.forward_head(model.forward_features(x), pre_logits=True), pooled)


def test_reset_classifier_and_own_relu_per_block():
    model = CBR(num_classes=3, width=2)
    model.reset_classifier(7)
    assert model.get_classifier().out_features == 7 and model.num_classes == 7
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 5 and len({id(r) for r in relus}) == 5  # hook-based attributions need their own


def test_refusals_and_timm_bookkeeping():
    with pytest.raises(SpurlabError, match="width: 0 must be a positive integer"):
        CBR(width=0)
    with pytest.raises(SpurlabError, match="no pretrained weights"):
        timm.create_model("cbr_tiny", pretrained=True)
    assert timm_model_kwargs({"pretrained_cfg": {}, "cache_dir": "x", "width": 3}) == {"width": 3}
    with pytest.raises(TypeError):
        timm.create_model("cbr_tiny", depth=3)  # an unknown model argument fails loudly
