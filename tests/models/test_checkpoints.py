"""Checkpoint import: Madry robustness layout and plain state dicts into timm's resnet50 (docs/methods.md#models).

The real Madry file cannot be downloaded here; the checkpoints are built in exactly its layout
from randomly initialised networks (torchvision's resnet50, the architecture the robustness
library copies, and timm's), with BatchNorm statistics randomised so that buffers matter.
"""

import subprocess

import pytest
import timm
import torch
import torchvision

from spurlab.errors import SpurlabError
from spurlab.io import sha256_file
from spurlab.models import load_model
from spurlab.models.checkpoints import import_checkpoint
from spurlab.models.factory import IMAGENET_MEAN, IMAGENET_STD

MEAN, STD = [0.4, 0.45, 0.5], [0.2, 0.25, 0.3]


def randomise_bn(net):
    g = torch.Generator().manual_seed(1)
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
    return net.eval()


def normalised(x, mean=MEAN, std=STD):
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def madry_layout(state, attacker=True, epoch=89):
    """The robustness library's layout: DataParallel(AttackerModel) = model + attacker copy + normaliser."""
    out = {f"module.model.{k}": v.clone() for k, v in state.items()}
    if attacker:
        out.update({f"module.attacker.model.{k}": v.clone() for k, v in state.items()})
        out["module.attacker.normalize.new_mean"] = torch.tensor(MEAN).view(3, 1, 1)
        out["module.attacker.normalize.new_std"] = torch.tensor(STD).view(3, 1, 1)
    out["module.normalizer.new_mean"] = torch.tensor(MEAN).view(3, 1, 1)
    out["module.normalizer.new_std"] = torch.tensor(STD).view(3, 1, 1)
    return {"model": out, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "schedule": None, "epoch": epoch}


@pytest.fixture(scope="module")
def tv1000():
    """torchvision's ImageNet resnet50 (1000 classes): the network inside the Madry checkpoints."""
    torch.manual_seed(0)
    return randomise_bn(torchvision.models.resnet50(weights=None))


@pytest.fixture(scope="module")
def timm10():
    torch.manual_seed(1)
    return randomise_bn(timm.create_model("resnet50", pretrained=False, num_classes=10))


@pytest.fixture(scope="module")
def madry_file(tmp_path_factory, tv1000):
    path = tmp_path_factory.mktemp("ck") / "imagenet_l2_3_0.pt"
    torch.save(madry_layout(tv1000.state_dict()), path)
    return path


@pytest.fixture(scope="module")
def plain10_file(tmp_path_factory, timm10):
    path = tmp_path_factory.mktemp("ck") / "plain10.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in timm10.state_dict().items()}, "epoch": 3}, path)
    return path


def test_timm_resnet50_uses_torchvision_names_and_shapes(tv1000):
    timm_state = timm.create_model("resnet50", pretrained=False).state_dict()
    tv_state = tv1000.state_dict()
    assert list(timm_state) == list(tv_state)
    assert all(timm_state[k].shape == tv_state[k].shape for k in tv_state)


def test_madry_checkpoint_imports_and_matches_the_source(madry_file, tv1000):
    model, info = import_checkpoint(madry_file)  # defaults: resnet50, 1000 classes, auto layout
    assert info["layout"] == "madry" and info["epoch"] == 89 and info["normalisation"] == "checkpoint"
    assert info["sha256"] == sha256_file(madry_file) and info["mean"] == pytest.approx(MEAN)
    assert model.mean.flatten().tolist() == pytest.approx(MEAN) and model.std.flatten().tolist() == pytest.approx(STD)
    assert (model.arch, model.num_classes, model.num_features, model.input_size, model.training) == (
        "resnet50",
        1000,
        2048,
        224,
        False,
    )
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = tv1000(normalised(x))
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
        w, b = model.head()
        torch.testing.assert_close(model.features(x) @ w.T + b, want, rtol=1e-5, atol=1e-5)
    # the attacker copy and the normaliser are dropped, not loaded anywhere
    assert not any("attacker" in k or "normalizer" in k for k in model.state_dict())


def test_madry_layout_without_dataparallel_prefix_and_forced_kind(tmp_path):
    """Layout handling does not depend on the arch: a small resnet18 keeps this test fast."""
    torch.manual_seed(2)
    src = randomise_bn(timm.create_model("resnet18", pretrained=False, num_classes=10))
    ck = madry_layout(src.state_dict(), attacker=False)
    ck["model"] = {k[len("module.") :]: v for k, v in ck["model"].items()}
    torch.save(ck, tmp_path / "noprefix.pt")
    model, info = import_checkpoint(tmp_path / "noprefix.pt", arch="resnet18", num_classes=10, kind="madry")
    assert info["layout"] == "madry" and model.std.flatten().tolist() == pytest.approx(STD)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(normalised(x)))


def test_plain_state_dict_with_ten_classes(plain10_file, timm10):
    model, info = import_checkpoint(plain10_file, arch="resnet50", num_classes=10)
    assert info["layout"] == "state_dict" and info["normalisation"] == "imagenet_default" and info["epoch"] == 3
    assert model.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN) and model.num_classes == 10
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.net(x), timm10(x))
        torch.testing.assert_close(model(x), timm10(normalised(x, IMAGENET_MEAN, IMAGENET_STD)))
    model, info = import_checkpoint(plain10_file, num_classes=10, mean=MEAN, std=STD, input_size=64)
    assert info["normalisation"] == "argument" and model.std.flatten().tolist() == pytest.approx(STD)
    assert model.input_size == 64


def test_wrong_shape_names_the_tensor(plain10_file, tmp_path):
    with pytest.raises(
        SpurlabError, match=r"plain10.pt: tensor fc.weight has shape \(10, 2048\), model expects \(1000, 2048\)"
    ):
        import_checkpoint(plain10_file, num_classes=1000)
    with pytest.raises(SpurlabError, match=r"plain10.pt: unexpected tensor conv1.weight"):
        import_checkpoint(plain10_file, arch="cbr_tiny", num_classes=10)
    with pytest.raises(SpurlabError, match="plain10.pt: no 'module.model.\\*' tensors; not a robustness-library"):
        import_checkpoint(plain10_file, num_classes=10, kind="madry")


def test_missing_tensors_name_the_tensor(tmp_path, timm10):
    ck = madry_layout(timm10.state_dict(), attacker=False)
    del ck["model"]["module.model.layer1.0.conv1.weight"]
    torch.save(ck, tmp_path / "missing.pt")
    with pytest.raises(SpurlabError, match="missing.pt: tensor layer1.0.conv1.weight missing"):
        import_checkpoint(tmp_path / "missing.pt", num_classes=10)
    ck = madry_layout({"fc.bias": torch.zeros(10)}, attacker=False)
    del ck["model"]["module.normalizer.new_std"]
    torch.save(ck, tmp_path / "nonorm.pt")
    with pytest.raises(SpurlabError, match="nonorm.pt: tensor module.normalizer.new_std missing"):
        import_checkpoint(tmp_path / "nonorm.pt", num_classes=10)
    ck = madry_layout({"fc.bias": torch.zeros(10)}, attacker=False)
    ck["model"]["module.normalizer.new_mean"] = torch.zeros(4, 1, 1)
    torch.save(ck, tmp_path / "badnorm.pt")
    with pytest.raises(
        SpurlabError, match=r"tensor module.normalizer.new_mean has shape \(4, 1, 1\), expected 3 values"
    ):
        import_checkpoint(tmp_path / "badnorm.pt", num_classes=10)


def test_unreadable_files_fail_clearly(tmp_path):
    with pytest.raises(SpurlabError, match="none.pt: checkpoint not found"):
        import_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(SpurlabError, match="junk.pt: cannot be read"):
        import_checkpoint(tmp_path / "junk.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(SpurlabError, match="list.pt: holds a list, not a state dict"):
        import_checkpoint(tmp_path / "list.pt")
    torch.save({"fc.bias": "x", "fc.weight": torch.zeros(2, 2)}, tmp_path / "str.pt")
    with pytest.raises(SpurlabError, match="str.pt: entry fc.bias is a str, not a tensor"):
        import_checkpoint(tmp_path / "str.pt", arch="cbr_tiny")
    with pytest.raises(SpurlabError, match="checkpoint layout 'torchvision'"):
        import_checkpoint(tmp_path / "str.pt", kind="torchvision")


def test_cli_import_writes_our_model_format(tmp_path, madry_file, tv1000):
    from tests.conftest import spurlab_exe

    (tmp_path / "names.txt").write_text("\n".join(f"class{i}" for i in range(1000)))
    out = tmp_path / "imported"
    subprocess.run([spurlab_exe(), "import-checkpoint", "--model", "r50", "--checkpoint", str(madry_file),
                    "--num-classes", "1000", "--class-names", str(tmp_path / "names.txt"), "--out-dir", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    model, meta = load_model(out)
    assert meta["robust"] and meta["class_names"][3] == "class3" and meta["imported"]["layout"] == "madry"
    assert meta["imported"]["sha256"] == sha256_file(madry_file)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv1000(normalised(x)), rtol=1e-5, atol=1e-5)
