"""Model factory and wrapper: every local arch builds, exposes phi/W/b, round-trips bitwise."""

import json

import pytest
import torch
from torch import nn

from spurlab.errors import SpurlabError
from spurlab.models import build_classifier, create_model, load_model, save_model

ARCHS = [
    ("cbr_tiny", {"width": 8}),
    ("cbr_tiny", {"width": 8, "pool_last": True}),
    ("resnet10_small", {"width": 8}),
    ("resnet10_small", {"width": 8, "stem_stride": 2}),
    ("resnet18_small", {"width": 8, "stem_stride": 2}),
]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("arch,args", ARCHS, ids=[f"{a}-{'-'.join(map(str, k.values()))}" for a, k in ARCHS])
def test_wrapper_api_and_logit_identity(arch, args, size):
    torch.manual_seed(0)
    m = build_classifier(arch, 7, size, args).eval()
    x = torch.rand(3, 3, size, size)
    fmap = m.feature_map(x)
    assert fmap.dim() == 4 and fmap.shape[:2] == (3, m.num_features) and fmap.shape[-1] >= 1
    phi = m.features(x)
    assert phi.shape == (3, m.num_features)
    w, b = m.head()
    assert w.shape == (7, m.num_features) and b.shape == (7,)
    # f_k(x) = sum_j W[k, j] phi_j(x) + b_k: the identity every analysis stage relies on
    torch.testing.assert_close(m.logits(x), phi @ w.T + b, rtol=1e-5, atol=1e-5)
    phi2, logits2 = m.forward_with_features(x)
    torch.testing.assert_close(phi2, phi)
    torch.testing.assert_close(logits2, m(x))


@pytest.mark.parametrize("arch,args", ARCHS[:1] + ARCHS[3:4])
def test_save_load_round_trip_is_bitwise(tmp_path, arch, args):
    torch.manual_seed(1)
    m = build_classifier(arch, 5, 32, args, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    m.train()
    m(torch.rand(4, 3, 32, 32))  # move BatchNorm running stats away from their init
    m.eval()
    save_model(m, tmp_path, {"name": "x", "class_names": list("abcde")})
    loaded, meta = load_model(tmp_path)
    for (k, v), (k2, v2) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(m(x), loaded(x))
    assert meta["arch"] == arch and meta["arch_args"] == args and meta["class_names"] == list("abcde")
    assert meta["mean"] == pytest.approx([0.1, 0.2, 0.3])


def test_every_relu_application_has_its_own_module():
    """Hook-based attributions (Guided Backprop) break when one activation module is reused."""
    for arch, args in ARCHS:
        m = build_classifier(arch, 3, 32, args).eval()
        calls = {}
        for name, mod in m.named_modules():
            if isinstance(mod, nn.ReLU):
                mod.register_forward_hook(lambda mod, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
        m(torch.rand(1, 3, 32, 32))
        assert calls and max(calls.values()) == 1, f"{arch}: reused ReLU {calls}"


def test_bad_arch_and_args_fail_clearly(tmp_path):
    with pytest.raises(SpurlabError, match="model arch 'nope'"):
        create_model("nope", 3)
    with pytest.raises(SpurlabError, match="width: 7 must be even"):
        create_model("resnet10_small", 3, width=7)
    with pytest.raises(SpurlabError, match="meta.json: missing"):
        load_model(tmp_path)
    m = build_classifier("cbr_tiny", 3, 32, {"width": 8})
    save_model(m, tmp_path, {})
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["arch_args"] = {"width": 16}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SpurlabError, match=r"tensor net.blocks.0.0.weight has shape \(8, 3, 3, 3\), model expects \(16, 3, 3, 3\)"):
        load_model(tmp_path)
