"""Warm starts (`models.<name>.init_checkpoint`): the network's weights are copied from a local file
before training, the file's provenance goes into the meta, and the trained model never reads the
file again (timm's `arch_args.checkpoint_path` would be re-read, and could overwrite, at every load)."""

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from spurlab.errors import SpurlabError
from spurlab.io import sha256_file
from spurlab.models import build_classifier, load_model, save_model
from spurlab.models.checkpoints import init_from_checkpoint
from spurlab.train import train_model
from tests.conftest import render_sets, small


def cbr(n_classes: int, seed: int, width: int = 8):
    torch.manual_seed(seed)
    return build_classifier("cbr_tiny", n_classes, 32, {"width": width})


def head_names(model) -> set[str]:
    ids = {id(p) for p in model.net.get_classifier().parameters()}
    return {n for n, p in model.net.named_parameters() if id(p) in ids}


def test_a_spurlab_model_file_gives_every_tensor(tmp_path):
    src = cbr(4, 0)
    save_model(src, tmp_path / "src", {"name": "src"})
    dst = cbr(4, 1)
    path = tmp_path / "src" / "model.safetensors"
    assert init_from_checkpoint(dst, path) == {"path": str(path), "sha256": sha256_file(path), "head": "loaded"}
    for (k, a), b in zip(src.net.state_dict().items(), dst.net.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("layout", ["torch", "safetensors"])
def test_a_head_for_other_classes_stays_at_its_initialisation(tmp_path, layout):
    src = cbr(10, 0)
    state = src.net.state_dict()
    if layout == "torch":  # nested and DataParallel-prefixed, as training scripts save them
        path = tmp_path / "w.pt"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 9}, path)
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    dst = cbr(6, 1)
    before = {k: v.clone() for k, v in dst.net.state_dict().items()}
    assert init_from_checkpoint(dst, path)["head"] == "reinitialised"
    head = head_names(dst)
    assert head == {"fc.weight", "fc.bias"}
    for k, v in dst.net.state_dict().items():
        assert torch.equal(v, before[k] if k in head else state[k]), k


def test_mismatches_name_the_file_and_the_tensor(tmp_path):
    state = cbr(4, 0).net.state_dict()
    first = next(k for k in state if k not in head_names(cbr(4, 0)))
    torch.save({k: v for k, v in state.items() if k != first}, tmp_path / "missing.pt")
    with pytest.raises(SpurlabError, match=f"missing.pt: tensor {first} missing"):
        init_from_checkpoint(cbr(4, 1), tmp_path / "missing.pt")
    torch.save(cbr(4, 0, width=4).net.state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(SpurlabError, match=f"narrow.pt: tensor {first} has shape"):
        init_from_checkpoint(cbr(4, 1), tmp_path / "narrow.pt")
    torch.save(state | {"extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(SpurlabError, match="extra.pt: unexpected tensor extra.weight"):
        init_from_checkpoint(cbr(4, 1), tmp_path / "extra.pt")
    with pytest.raises(SpurlabError, match="none.safetensors: checkpoint not found"):
        init_from_checkpoint(cbr(4, 1), tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(SpurlabError, match="junk.safetensors: unreadable safetensors file"):
        init_from_checkpoint(cbr(4, 1), tmp_path / "junk.safetensors")


def test_a_warm_started_model_records_its_start_and_loads_without_it(tmp_path, tiny_cfg):
    cfg = copy.deepcopy(small(tiny_cfg, train=64, val=32))
    cfg["train"]["epochs"] = 1
    sets = render_sets(cfg, ["train", "val"], tmp_path)
    init = tmp_path / "start"
    save_model(cbr(4, 5), init, {"name": "start"})
    cold = train_model(cfg, "erm_tiny", sets["train"], sets["val"], tmp_path / "cold")
    cfg["models"]["erm_tiny"]["init_checkpoint"] = str(init / "model.safetensors")
    warm = train_model(cfg, "erm_tiny", sets["train"], sets["val"], tmp_path / "warm")
    assert "init_checkpoint" not in cold
    assert warm["init_checkpoint"] == {"path": str(init / "model.safetensors"),
                                       "sha256": sha256_file(init / "model.safetensors"), "head": "loaded"}  # fmt: skip
    # the start changes training (same seed, same data), and the trained model no longer needs it
    w_cold, _ = load_model(tmp_path / "cold")
    w_warm, meta = load_model(tmp_path / "warm")
    assert meta["arch_args"] == {"width": 8} and "checkpoint_path" not in json.dumps(meta)
    assert not torch.equal(w_cold.net.get_classifier().weight, w_warm.net.get_classifier().weight)
    # other contents under the same path: the epoch checkpoints are not resumed, training starts over
    save_model(cbr(4, 6), init, {"name": "start"})
    again = train_model(cfg, "erm_tiny", sets["train"], sets["val"], tmp_path / "warm")
    assert again["init_checkpoint"]["sha256"] != warm["init_checkpoint"]["sha256"]
    w_again, _ = load_model(tmp_path / "warm")
    assert not torch.equal(w_again.net.get_classifier().weight, w_warm.net.get_classifier().weight)
    (init / "model.safetensors").unlink()  # moved or deleted: loading the trained model never reads it
    for a, b in zip(w_again.state_dict().values(), load_model(tmp_path / "warm")[0].state_dict().values()):
        assert torch.equal(a, b)
