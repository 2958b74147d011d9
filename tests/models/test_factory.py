"""Model factory and wrapper: every local arch builds through timm, exposes phi/W/b with
logits == phi @ W.T + b, and round-trips bitwise through save/load (docs/methods.md#models)."""

import json

import numpy as np
import pytest
import timm
import torch
from torch import nn

import spurlab.models
from spurlab.errors import SpurlabError
from spurlab.models import LOCAL_ARCHS, Classifier, build_classifier, create_model, load_model, predict, save_model

# every registered local arch, with its non-default variants; small widths keep the suite fast
# (arch, arch_args, total stride of the pre-pool map)
VARIANTS = [
    ("cbr_tiny", {"width": 8}, 16),
    ("cbr_tiny", {"width": 8, "pool_last": True}, 32),
    ("resnet10_small", {"width": 8}, 8),
    ("resnet10_small", {"width": 8, "stem_stride": 2}, 16),
    ("resnet18_small", {"width": 8}, 8),
    ("resnet18_small", {"width": 8, "stem_stride": 2}, 16),
]
ARCHS = [(a, args) for a, args, _ in VARIANTS]
IDS = [f"{a}-{'-'.join(f'{k}{v}' for k, v in args.items())}" for a, args in ARCHS]


def test_the_parametrisation_covers_every_registered_local_arch():
    registered = {n for n in timm.list_models() if timm.models.model_entrypoint(n).__module__.startswith("spurlab.")}
    assert registered == set(LOCAL_ARCHS) == {a for a, _ in ARCHS}


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("arch,args,stride", VARIANTS, ids=IDS)
def test_timm_api_of_the_bare_network(arch, args, stride, size):
    torch.manual_seed(0)
    net = timm.create_model(arch, num_classes=10, **args).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        fmap = net.forward_features(x)
        assert fmap.shape == (2, net.num_features, size // stride, size // stride)
        assert net.num_features == 8 * args["width"]
        fc = net.get_classifier()
        assert isinstance(fc, nn.Linear) and (fc.in_features, fc.out_features) == (net.num_features, 10)
        pooled = net.forward_head(fmap, pre_logits=True)
        torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))
        torch.testing.assert_close(net(x), net.forward_head(fmap))
        torch.testing.assert_close(net(x), fc(pooled))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("arch,args", ARCHS, ids=IDS)
def test_wrapper_api_and_logit_identity(arch, args, size):
    torch.manual_seed(0)
    m = build_classifier(arch, 7, size, args, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4)).eval()
    assert (m.arch, m.num_classes, m.input_size, m.arch_args) == (arch, 7, size, args)
    x = torch.rand(3, 3, size, size)
    with torch.no_grad():
        fmap = m.feature_map(x)
        # normalisation lives in the wrapper: the map is the bare network's on (x - mean) / std
        norm = (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
        torch.testing.assert_close(fmap, m.net.forward_features(norm))
        assert fmap.dim() == 4 and fmap.shape[:2] == (3, m.num_features)
        phi = m.features(x)
        assert phi.shape == (3, m.num_features)
        torch.testing.assert_close(phi, fmap.mean(dim=(2, 3)))
        w, b = m.head()
        assert w.shape == (7, m.num_features) and b.shape == (7,)
        # f_k(x) = sum_j W[k, j] phi_j(x) + b_k: the identity every analysis stage relies on
        torch.testing.assert_close(m.logits(x), phi @ w.T + b, rtol=1e-5, atol=1e-5)
        phi2, logits2 = m.forward_with_features(x)
        assert torch.equal(phi2, phi) and torch.equal(logits2, m(x))
        torch.testing.assert_close(m(x), m.net(norm))


@pytest.mark.parametrize("arch,args", ARCHS, ids=IDS)
def test_wrapper_matches_the_network_in_training_mode_with_dropout(arch, args):
    """Classifier.logits == net.forward in train mode too: the head's dropout is not skipped."""
    torch.manual_seed(0)
    m = build_classifier(arch, 5, 32, dict(args, drop_rate=0.5)).train()
    x = torch.rand(4, 3, 32, 32)
    norm = (x - m.mean) / m.std
    torch.manual_seed(3)
    a = m(x)
    torch.manual_seed(3)
    assert torch.equal(a, m.net(norm))
    torch.manual_seed(3)
    f1 = m.features(x)
    torch.manual_seed(4)
    f2 = m.features(x)
    assert not torch.equal(f1, f2) and (f1 == 0).any()  # dropout is active on phi in train mode
    m.eval()
    assert torch.equal(m.features(x), m.features(x))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("arch,args", ARCHS, ids=IDS)
def test_save_load_round_trip_is_bitwise(tmp_path, arch, args, size):
    torch.manual_seed(1)
    m = build_classifier(arch, 5, size, args, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    m.train()
    m(torch.rand(4, 3, size, size))  # move BatchNorm running stats away from their init
    m.eval()
    save_model(m, tmp_path, {"name": "x", "class_names": list("abcde"), "arch": "ignored"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "model.safetensors"]
    loaded, meta = load_model(tmp_path)
    assert not loaded.training and isinstance(loaded, Classifier)
    own, back = m.state_dict(), loaded.state_dict()
    assert list(own) == list(back) and "mean" in back and "std" in back
    for k in own:
        assert own[k].dtype == back[k].dtype and torch.equal(own[k], back[k]), k
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(m(x), loaded(x)) and torch.equal(m.features(x), loaded.features(x))
    assert (meta["arch"], meta["arch_args"], meta["num_classes"], meta["input_size"]) == (arch, args, 5, size)
    assert meta["name"] == "x" and meta["class_names"] == list("abcde") and meta["num_features"] == m.num_features
    assert meta["mean"] == pytest.approx([0.1, 0.2, 0.3]) and meta["std"] == pytest.approx([0.5, 0.6, 0.7])
    assert (loaded.arch, loaded.input_size, loaded.arch_args) == (arch, size, args)


def test_every_relu_application_has_its_own_module():
    """Hook-based attributions (Guided Backprop) break when one activation module is reused."""
    for arch, args in ARCHS:
        m = build_classifier(arch, 3, 32, args).eval()
        calls = {}
        for name, mod in m.named_modules():
            if isinstance(mod, nn.ReLU):
                mod.register_forward_hook(
                    lambda mod, i, o, name=name, calls=calls: calls.__setitem__(name, calls.get(name, 0) + 1)
                )
        m(torch.rand(1, 3, 32, 32))
        assert calls and max(calls.values()) == 1, f"{arch}: reused ReLU {calls}"


def test_cbr_tiny_layout_follows_the_paper():
    """Five conv3x3-BN-ReLU blocks, channels w, 2w, 4w, 4w, 8w, max-pool after each (bar the last by default)."""
    net = spurlab.models.cbr.CBR(num_classes=4, width=4)
    kinds = [[type(layer).__name__ for layer in block] for block in net.blocks]
    assert kinds == [["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]] * 4 + [["Conv2d", "BatchNorm2d", "ReLU"]]
    assert [block[0].out_channels for block in net.blocks] == [4, 8, 16, 16, 32]
    assert all(block[0].kernel_size == (3, 3) for block in net.blocks)
    pooled = spurlab.models.cbr.CBR(num_classes=4, width=4, pool_last=True)
    assert all(isinstance(block[-1], nn.MaxPool2d) for block in pooled.blocks)


def test_small_resnet_stem_is_one_3x3_convolution_without_maxpool():
    net = create_model("resnet18_small", 4, width=8)
    assert isinstance(net.conv1, nn.Conv2d) and net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and [len(getattr(net, f"layer{i}")) for i in (1, 2, 3, 4)] == [
        2,
        2,
        2,
        2,
    ]
    assert [info["reduction"] for info in net.feature_info] == [1, 1, 2, 4, 8]


def test_bad_arch_and_args_fail_clearly():
    with pytest.raises(SpurlabError, match="model arch 'nope'"):
        create_model("nope", 3)
    with pytest.raises(SpurlabError, match="pretrained weights are never downloaded"):
        create_model("cbr_tiny", 3, pretrained=True)
    with pytest.raises(SpurlabError, match="width: 7 must be even"):
        create_model("resnet10_small", 3, width=7)
    with pytest.raises(SpurlabError, match="stem_stride: 3"):
        create_model("resnet10_small", 3, stem_stride=3)
    for arch in LOCAL_ARCHS:  # a misspelt argument is an error, not silently ignored
        with pytest.raises(SpurlabError, match=f"model arch '{arch}': bad arch_args"):
            create_model(arch, 3, widht=8)
    with pytest.raises(SpurlabError, match="arch_args.checkpoint_path is not an architecture argument"):
        create_model("cbr_tiny", 3, checkpoint_path="no_such.pth")
    with pytest.raises(SpurlabError, match=r"std \[0.5, 0.0, 0.5\] must be 3 values > 0"):
        build_classifier("cbr_tiny", 3, 32, {"width": 4}, std=(0.5, 0.0, 0.5))


def test_save_refuses_bad_meta_without_writing(tmp_path):
    m = build_classifier("cbr_tiny", 3, 32, {"width": 4})
    with pytest.raises(SpurlabError, match="meta is not JSON-serialisable"):
        save_model(m, tmp_path / "a", {"bad": object()})
    with pytest.raises(SpurlabError, match="2 class_names for a 3-class model"):
        save_model(m, tmp_path / "b", {"class_names": ["x", "y"]})
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_load_errors_name_the_file_or_tensor(tmp_path):
    with pytest.raises(SpurlabError, match="meta.json: missing"):
        load_model(tmp_path)
    m = build_classifier("cbr_tiny", 3, 32, {"width": 8})
    save_model(m, tmp_path, {})
    meta = json.loads((tmp_path / "meta.json").read_text())

    def with_meta(**change):
        (tmp_path / "meta.json").write_text(
            json.dumps({k: v for k, v in dict(meta, **change).items() if v is not None})
        )

    with_meta(arch_args={"width": 16})
    with pytest.raises(
        SpurlabError, match=r"tensor net.blocks.0.0.weight has shape \(8, 3, 3, 3\), model expects \(16, 3, 3, 3\)"
    ):
        load_model(tmp_path)
    with_meta(arch_args={"width": 8, "pool_last": True}, num_classes=4)
    with pytest.raises(SpurlabError, match=r"tensor net.fc.bias has shape \(3,\), model expects \(4,\)"):
        load_model(tmp_path)
    with_meta(arch="resnet10_small")
    with pytest.raises(SpurlabError, match="model.safetensors: unexpected tensor net.blocks."):
        load_model(tmp_path)
    with_meta(input_size=None)
    with pytest.raises(SpurlabError, match="meta.json: key 'input_size' missing"):
        load_model(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(SpurlabError, match="meta.json: not valid JSON"):
        load_model(tmp_path)
    with_meta()
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(SpurlabError, match="model.safetensors: unreadable"):
        load_model(tmp_path)


def test_predict_gives_the_eval_mode_classes_of_uint8_images_in_any_batch_size():
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 16, {"width": 4}).train()
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    p = predict(model, x, batch_size=2)
    assert not model.training and p.dtype == np.int64 and p.shape == (5,)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    assert (p == ref).all() and (predict(model, x, batch_size=5) == p).all()
    assert predict(model, x[:0]).shape == (0,)
