"""Training: learns, resumes exactly after a kill, augments correctly."""

import copy

import numpy as np
import pytest
import torch

from spurlab.config import bam_model_section, model_section, posthoc_model_section
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError
from spurlab.models import build_classifier
from spurlab.train import (
    InMemoryBatches,
    StreamingBatches,
    TrainSettings,
    augment,
    fit,
    last_checkpoint,
    to_float,
    train_model,
    training_plan,
)
from tests.conftest import render_sets


@pytest.fixture(scope="module")
def data():
    import yaml

    from tests.conftest import ROOT

    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())

    def arrays(name):
        recs = list(build_plan(cfg, name)[0].chunks())
        x = torch.from_numpy(np.concatenate([r["images"] for r in recs]))
        return InMemoryBatches(x, torch.from_numpy(np.concatenate([r["labels"] for r in recs])))

    return cfg, arrays("train"), arrays("val")


def settings(cfg, **over):
    return TrainSettings.from_config(dict(copy.deepcopy(cfg["train"]), **over), None)


def new_model(seed=0):
    torch.manual_seed(seed)
    return build_classifier("cbr_tiny", 4, 32, {"width": 8})


def test_training_loss_decreases(data, tmp_path):
    cfg, train, val = data
    hist = fit(new_model(), train, val, settings(cfg, epochs=4), 0, tmp_path, torch.device("cpu"), progress=False)
    losses = [h["train_loss"] for h in hist]
    assert losses[-1] < losses[0] - 0.1, losses
    assert hist[-1]["val_acc"] > 0.3  # 4 classes: chance is 0.25
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]


def test_killed_run_resumes_at_the_right_epoch_with_identical_weights(data, tmp_path):
    cfg, train, val = data
    s = settings(cfg, epochs=3)
    full = new_model()
    fit(full, train, val, s, 0, tmp_path / "full", torch.device("cpu"), progress=False)

    part = new_model()
    fit(part, train, val, s, 0, tmp_path / "part", torch.device("cpu"), progress=False, stop_after_epoch=1)
    assert last_checkpoint(tmp_path / "part")[0] == 1
    resumed = new_model(seed=123)  # a fresh process: different init, overwritten by the checkpoint
    hist = fit(resumed, train, val, s, 0, tmp_path / "part", torch.device("cpu"), progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_robust_training_runs_and_records_adversarial_settings(data, tmp_path):
    cfg, train, val = data
    rob = cfg["models"]["robust_tiny"]["robust"]
    s = TrainSettings.from_config(dict(cfg["train"], epochs=1), rob)
    assert s.robust and s.pgd_steps == rob["steps"]
    hist = fit(
        new_model(),
        InMemoryBatches(train.x[:128], train.y[:128]),
        val,
        s,
        0,
        tmp_path,
        torch.device("cpu"),
        progress=False,
    )
    assert np.isfinite(hist[0]["train_loss"])


def test_augment_is_a_shift_or_flip_of_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16)
    same = augment(x, g, hflip=False, pad=0)
    assert torch.equal(same, x)
    flipped = augment(x, torch.Generator().manual_seed(1), hflip=True, pad=0)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
    shifted = augment(x, torch.Generator().manual_seed(2), hflip=False, pad=2)
    # the centre 12x12 of a shifted crop appears in the original at an offset of at most 2
    for a, b in zip(shifted, x):
        assert any(torch.equal(a[:, 2:14, 2:14], b[:, 2 + dy : 14 + dy, 2 + dx : 14 + dx])
                   for dy in range(-2, 3) for dx in range(-2, 3))  # fmt: skip
    assert to_float(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)).shape == (1, 3, 2, 2)


def test_checkpoints_of_another_config_are_not_resumed(data, tmp_path):
    cfg, train, val = data
    fit(
        new_model(),
        train,
        val,
        settings(cfg, epochs=2),
        0,
        tmp_path,
        torch.device("cpu"),
        progress=False,
        fingerprint="old",
    )
    assert last_checkpoint(tmp_path)[0] == 2
    fresh = new_model()
    hist = fit(
        fresh, train, val, settings(cfg, epochs=1), 0, tmp_path, torch.device("cpu"), progress=False, fingerprint="new"
    )
    assert [h["epoch"] for h in hist] == [1] and last_checkpoint(tmp_path)[0] == 1
    same = new_model()
    fit(
        same,
        train,
        val,
        settings(cfg, epochs=1),
        0,
        tmp_path / "clean",
        torch.device("cpu"),
        progress=False,
        fingerprint="new",
    )
    for a, b in zip(fresh.state_dict().values(), same.state_dict().values()):
        assert torch.equal(a, b)


def test_streaming_an_index_set_trains_the_same_weights_as_in_memory(data, tmp_path):
    """Index sets (real data) go through DataLoader workers in the seeded order: same batches."""
    import h5py
    from PIL import Image

    from spurlab.data.imagesets import FORMAT, ImageSet

    cfg, train, val = data
    paths = []
    for i, img in enumerate(train.x[:96].numpy()):
        p = tmp_path / f"{i}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p).encode())
    with h5py.File(tmp_path / "index.h5", "w") as f:
        f["paths"] = np.array(paths)
        f["labels"] = train.y[:96].numpy()
        f.attrs.update(
            format=FORMAT, kind="index", n_images=96, class_names='["a","b","c","d"]', image_size=32, sha256="x"
        )
    streamed = StreamingBatches(ImageSet(tmp_path / "index.h5"), workers=2)
    packed = InMemoryBatches(train.x[:96], train.y[:96])
    order = torch.randperm(96, generator=torch.Generator().manual_seed(0))
    for (xa, ya), (xb, yb) in zip(streamed.batches(order, 40), packed.batches(order, 40)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    s = settings(cfg, epochs=1)
    a, b = new_model(), new_model()
    fit(a, streamed, val, s, 0, tmp_path / "a", torch.device("cpu"), progress=False)
    fit(b, packed, val, s, 0, tmp_path / "b", torch.device("cpu"), progress=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_one_entry_point_plans_a_model_of_every_family_by_name(tiny_cfg):
    cfg = tiny_cfg
    suite = training_plan(cfg, "robust_tiny")
    assert suite["section"] == model_section(cfg, "robust_tiny") and suite["settings"].robust and suite["seed"] == 0
    assert "label_column" not in suite and not training_plan(cfg, "erm_tiny")["settings"].robust
    f_s, f_o = training_plan(cfg, "f_s"), training_plan(cfg, "f_o")
    assert f_s["section"] == bam_model_section(cfg, "f_s") and f_s["seed"] == cfg["bam"]["benchmark"]["seed"]
    assert f_s["label_column"] == "scene_label" and f_s["extra_meta"] == {"label_column": "scene_label"}
    assert f_o["label_column"] is None and f_o["section"]["train"] == bam_model_section(cfg, "f_o")["train"]
    normal = training_plan(cfg, "spurious_tag")
    assert normal["section"] == posthoc_model_section(cfg, "spurious_tag") and normal["arch"] == cfg["posthoc"]["arch"]
    assert "label_column" not in normal and not normal["settings"].robust
    with pytest.raises(SpurlabError, match="model 'nope': not a trained model of this config"):
        training_plan(cfg, "nope")


@pytest.mark.slow
def test_a_bam_model_trains_on_its_label_column(tiny_cfg, tmp_path):
    """f_s learns the scene labels of the object sets: its classes are the scenes, its meta says so."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["bam"]["benchmark"]["train"]["epochs"] = 1
    sets = render_sets(cfg, ["bam_os_train", "bam_os_test"], tmp_path)
    meta = train_model(cfg, "f_s", sets["bam_os_train"], sets["bam_os_test"], tmp_path / "f_s", threads=1,
                       progress=False)  # fmt: skip
    assert meta["label_column"] == "scene_label" and meta["class_names"] == list(cfg["bam"]["scenes"])
    assert meta["training"] == bam_model_section(cfg, "f_s") and (tmp_path / "f_s" / "model.safetensors").exists()
