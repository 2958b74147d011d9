"""NAMs (docs/methods.md#neural-activation-maps): soft masks in [0, 1] with max 1; all-zero maps stay zero, not NaN."""

import torch

from spurlab.discover.nam import activation_maps, feature_map_size, neural_activation_maps
from spurlab.models.factory import build_classifier


def test_nam_max_is_one_and_upsampled():
    torch.manual_seed(0)
    maps = torch.rand(4, 4, 4) * torch.tensor([0.01, 1.0, 7.0, 300.0]).view(4, 1, 1)
    nam = activation_maps(maps, 32)
    assert nam.shape == (4, 32, 32)
    assert torch.allclose(nam.flatten(1).amax(1), torch.ones(4))
    assert nam.min() >= 0


def test_all_zero_map_gives_zeros_not_nan():
    maps = torch.zeros(3, 4, 4)
    maps[1, 2, 2] = 5.0
    nam = activation_maps(maps, 16)
    assert not torch.isnan(nam).any()
    assert nam[0].abs().sum() == 0 and nam[2].abs().sum() == 0 and nam[1].max() == 1


def test_neural_activation_maps_pick_the_requested_channel():
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fmap = model.feature_map(x)
    nam = neural_activation_maps(model, x, [3, 7])
    assert torch.allclose(nam[0], activation_maps(fmap[0:1, 3], 32)[0])
    assert torch.allclose(nam[1], activation_maps(fmap[1:2, 7], 32)[0])


def test_feature_map_size_is_the_grid_the_maps_come_from():
    model = build_classifier("resnet10_small", 3, 64, {}).eval()
    assert feature_map_size(model, 64) == model.feature_map(torch.zeros(1, 3, 64, 64)).shape[-1] == 8
    assert feature_map_size(model, 32) == 4
