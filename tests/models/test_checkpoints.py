"""Checkpoint import: Madry robustness layout and plain state dicts (SPEC 2)."""

import pytest
import timm
import torch

from spurlab.errors import SpurlabError
from spurlab.models.checkpoints import import_checkpoint

MEAN, STD = [0.4, 0.45, 0.5], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    net = timm.create_model("resnet50", pretrained=False, num_classes=10).eval()
    return net


def madry_layout(net):
    """Exactly the robustness library's layout: model + attacker copies and a normaliser."""
    state = {}
    for k, v in net.state_dict().items():
        state[f"module.model.{k}"] = v.clone()
        state[f"module.attacker.model.{k}"] = v.clone()
    state["module.normalizer.new_mean"] = torch.tensor(MEAN).view(3, 1, 1)
    state["module.normalizer.new_std"] = torch.tensor(STD).view(3, 1, 1)
    state["module.attacker.normalize.new_mean"] = torch.tensor(MEAN).view(3, 1, 1)
    state["module.attacker.normalize.new_std"] = torch.tensor(STD).view(3, 1, 1)
    return {"model": state, "epoch": 89}


def test_madry_checkpoint_imports_and_matches_the_source(tmp_path, source):
    path = tmp_path / "madry.pt"
    torch.save(madry_layout(source), path)
    model, info = import_checkpoint(path, arch="resnet50", num_classes=10)
    assert info["layout"] == "madry" and info["epoch"] == 89 and len(info["sha256"]) == 64
    assert model.mean.flatten().tolist() == pytest.approx(MEAN) and model.std.flatten().tolist() == pytest.approx(STD)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = source((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
        torch.testing.assert_close(model(x), want)
    assert model.num_features == 2048


def test_plain_state_dict(tmp_path, source):
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model, info = import_checkpoint(path, arch="resnet50", num_classes=10)
    assert info["layout"] == "state_dict"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.net(x), source(x))


def test_mismatches_name_the_tensor(tmp_path, source):
    ck = madry_layout(source)
    del ck["model"]["module.model.layer1.0.conv1.weight"]
    torch.save(ck, tmp_path / "missing.pt")
    with pytest.raises(SpurlabError, match="missing.pt: tensor layer1.0.conv1.weight missing"):
        import_checkpoint(tmp_path / "missing.pt", num_classes=10)
    with pytest.raises(SpurlabError, match=r"tensor fc.weight has shape \(10, 2048\), model expects \(1000, 2048\)"):
        torch.save(madry_layout(source), tmp_path / "ok.pt")
        import_checkpoint(tmp_path / "ok.pt", num_classes=1000)
    ck = madry_layout(source)
    del ck["model"]["module.normalizer.new_std"]
    torch.save(ck, tmp_path / "nonorm.pt")
    with pytest.raises(SpurlabError, match="tensor module.normalizer.new_std missing"):
        import_checkpoint(tmp_path / "nonorm.pt", num_classes=10)
    with pytest.raises(SpurlabError, match="checkpoint not found"):
        import_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(SpurlabError, match="junk.pt: cannot be read"):
        import_checkpoint(tmp_path / "junk.pt")


def test_cli_import_writes_our_model_format(tmp_path, source):
    import subprocess

    from spurlab.models import load_model
    from tests.conftest import spurlab_exe

    torch.save(madry_layout(source), tmp_path / "madry.pt")
    (tmp_path / "names.txt").write_text("\n".join(f"class{i}" for i in range(10)))
    out = tmp_path / "imported"
    subprocess.run([spurlab_exe(), "import-checkpoint", "--model", "r50", "--checkpoint", str(tmp_path / "madry.pt"),
                    "--num-classes", "10", "--class-names", str(tmp_path / "names.txt"), "--out-dir", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    model, meta = load_model(out)
    assert meta["robust"] and meta["class_names"][3] == "class3" and meta["imported"]["layout"] == "madry"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)))
    r = subprocess.run([spurlab_exe(), "import-checkpoint", "--model", "x", "--checkpoint", str(tmp_path / "madry.pt"),
                        "--num-classes", "1000", "--out-dir", str(tmp_path / "bad")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "tensor fc.weight has shape (10, 2048), model expects (1000, 2048)" in r.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
