"""TCAV through captum (docs/methods.md#attribution-methods): planted concept recovered, random-concept t-test, content-keyed cache."""

import pytest
import torch
from torch import nn

from spurlab.attribution.tcav import TCAVSettings, cache_key, combine_layers, tcav_scores


class RedDetector(nn.Module):
    """logit 0 = mean(red^2) - mean(green^2), logit 1 = its negative, through a fixed 1x1 conv 'conv'
    (squares: the layer gradient varies with the input, so random CAVs split the inputs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0  # channel 0: red
            self.conv.weight[1, 1] = 1.0  # channel 1: green

    def forward(self, x):
        a = self.conv(x).pow(2).mean((2, 3))
        d = a[:, :1] - a[:, 1:]
        return torch.cat([d, -d], 1)


def _images(g, n, red=False):
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.5
    if red:
        x[:, 0] += 0.5  # the concept: redder than anything random
    return x


def test_planted_concept_is_significant_and_random_cavs_are_not(tmp_path):
    g = torch.Generator().manual_seed(0)
    model = RedDetector().eval()
    settings = TCAVSettings(random_sets=8, alpha=0.01, seed=0)
    concept = _images(g, 30, red=True)
    randoms = [_images(g, 30) for _ in range(settings.random_sets + 1)]
    inputs = _images(g, 20)
    key = cache_key("a" * 64, "b" * 64, settings, ["conv"])
    rows = tcav_scores(
        model, ["conv"], concept, randoms, inputs, torch.zeros(20, dtype=torch.long), key, tmp_path, settings
    )
    (r,) = rows
    # the red CAV points along +red, which raises logit 0 for every input
    assert r["score"] == pytest.approx(1.0) and r["significant"] and r["p_value"] < 0.01
    assert 0.0 <= r["random_score"] <= 1.0 and r["random_score"] < 0.9
    comb = combine_layers(rows)
    assert comb["score"] == pytest.approx(1.0) and comb["layers_kept"] == ["conv"]
    # for the opposite class the concept lowers the logit: score 0, still significant
    rows1 = tcav_scores(
        model, ["conv"], concept, randoms, inputs, torch.ones(20, dtype=torch.long), key, tmp_path, settings
    )
    assert rows1[0]["score"] == pytest.approx(0.0) and rows1[0]["significant"]


def test_cache_key_changes_with_model_concepts_settings_and_layers():
    s = TCAVSettings()
    base = cache_key("m" * 64, "c" * 64, s, ["l"])
    assert base == cache_key("m" * 64, "c" * 64, TCAVSettings(), ["l"])
    assert base != cache_key("n" * 64, "c" * 64, s, ["l"])  # retrained model: never the stale CAV
    assert base != cache_key("m" * 64, "d" * 64, s, ["l"])
    assert base != cache_key("m" * 64, "c" * 64, TCAVSettings(random_sets=3), ["l"])
    assert base != cache_key("m" * 64, "c" * 64, s, ["l", "k"])


def test_no_significant_layer_gives_score_zero():
    rows = [{"layer": "a", "score": 0.7, "random_score": 0.5, "significant": False}]
    assert combine_layers(rows)["score"] == 0.0 and combine_layers(rows)["score_all_layers"] == 0.7
