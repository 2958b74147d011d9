"""`resnet10_small` / `resnet18_small` (CIFAR-style ResNets in timm): one 3x3 stem, no max-pool,
stages w..8w, feature_info reductions that match the real maps, refusals."""

import pytest
import timm
import torch

import spurlab.models  # noqa: F401  (registers the local architectures)
from spurlab.errors import SpurlabError
from spurlab.models.resnet_small import resnet10_small


@pytest.mark.parametrize(("stem_stride", "side"), [(1, 4), (2, 2)])
def test_shapes_and_forward_is_head_of_features(stem_stride, side):
    torch.manual_seed(0)
    model = timm.create_model("resnet10_small", num_classes=4, width=4, stem_stride=stem_stride).eval()
    x = torch.randn(2, 3, 32, 32)
    f = model.forward_features(x)
    assert f.shape == (2, 32, side, side) and model.num_features == 32
    assert torch.equal(model(x), model.forward_head(f))
    assert model.forward_head(f, pre_logits=True).shape == (2, 32)
    assert isinstance(model.maxpool, torch.nn.Identity) and model.conv1.kernel_size == (3, 3)


def test_feature_info_reductions_are_the_real_ones():
    torch.manual_seed(0)
    model = timm.create_model("resnet18_small", num_classes=2, width=2, stem_stride=2).eval()
    x = torch.randn(1, 3, 32, 32)
    maps = [model.act1(model.bn1(model.conv1(x)))]
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        maps.append(layer(maps[-1]))
    assert [32 // m.shape[-1] for m in maps] == [i["reduction"] for i in model.feature_info] == [2, 2, 4, 8, 16]
    assert [m.shape[1] for m in maps] == [2, 2, 4, 8, 16]  # stages w, 2w, 4w, 8w
    blocks = [b for b in model.modules() if type(b).__name__ == "BasicBlock"]
    assert len(blocks) == 8  # [2, 2, 2, 2]


def test_refusals():
    with pytest.raises(SpurlabError, match="width: 3 must be even"):
        resnet10_small(width=3)
    with pytest.raises(SpurlabError, match="stem_stride: 4 must be 1 or 2"):
        resnet10_small(stem_stride=4)
    with pytest.raises(SpurlabError, match="resnet18_small: no pretrained weights"):
        timm.create_model("resnet18_small", pretrained=True)
