"""Importance with an empty class group: a class no image is predicted as gets no top features, is
left out of the top-feature table, D(i, j) and the task pages, and is named on stderr."""

import json

import numpy as np
import pytest
from PIL import Image

from spurlab.errors import SpurlabError

WNIDS = ["n01440764", "n01443537", "n01484850"]
NAMES = ["tench", "goldfish", "shark"]


def _folder(root, n_per_class=4, size=32, seed=0, empty=()):
    """Class folders of seeded random PNGs; the classes in `empty` have no folder (the synset map
    still lists them, so the class exists without images)."""
    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        if wnid in empty:
            continue
        (root / wnid).mkdir(parents=True)
        for k in range(n_per_class):
            img = np.clip(40 * (c + 1) + rng.integers(0, 60, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / wnid / f"{wnid}_{k:02d}.png")
    synsets = root.parent / "synsets.txt"
    synsets.write_text("".join(f"{w} {n}\n" for w, n in zip(WNIDS, NAMES)))
    return root, synsets


def _model(d, bias: dict[int, float], split=None):
    """A seeded toy model over the classes whose head bias is set to `bias` {class: value}; with
    `split` (images), class 0's bias is shifted so that half of them are predicted 0, half 2."""
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.models import build_classifier, save_model

    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", len(WNIDS), 32, {"width": 4}).eval()
    with torch.no_grad():
        _, b = model.head()
        for k, v in bias.items():
            b[k] = v
        if split is not None:
            logits = model.logits(torch.from_numpy(split).permute(0, 3, 1, 2).float().div(255.0)).numpy()
            b[0] -= float(np.median(logits[:, 0] - logits[:, 2]))
    save_model(model, d / "model", {"name": "m", "class_names": NAMES})
    return model, model_checkpoint_sha256(d / "model")


@pytest.fixture
def never_predicted(tmp_path):
    """An index set of 3 classes and a model that never predicts class 1 (bias -1e4)."""
    import torch

    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import ImageSet
    from spurlab.features import cache_features

    root, synsets = _folder(tmp_path / "imgs")
    index_image_folder(root, tmp_path / "real.h5", image_size=32, synsets=synsets)
    s = ImageSet(tmp_path / "real.h5")
    model, sha = _model(tmp_path, {1: -1e4}, split=s.images())
    cache_features(model, "m", sha, s, tmp_path / "f.h5", torch.device("cpu"), progress=False)
    return tmp_path, s


def test_a_class_never_predicted_gets_no_top_features(never_predicted, capsys):
    from spurlab.data.feature_cache import open_features
    from spurlab.discover.importance import ImportanceSettings, read_importance, run_importance
    from spurlab.io.tables import read_table, table_provenance

    d, s = never_predicted
    with open_features(d / "f.h5") as fc:
        preds = fc["preds"]
    assert sorted(set(preds.tolist())) == [0, 2]  # the premise: class 1 is never predicted
    info = run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("prediction", 2))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "f.h5" in err[0] and "predicted as" in err[0]
    assert err[0].endswith(": goldfish")  # the one class named, and only it
    assert info["empty_classes"] == ["goldfish"] and info["empty_groups"] == 1 and info["classes"] == 2
    imp = read_importance(d / "imp.h5")
    assert imp["empty_classes"].tolist() == [1] and imp["counts"][1] == 0
    assert (imp["top"][1] == -1).all() and (imp["top"][[0, 2]] >= 0).all()
    table = read_table(d / "imp.parquet")
    assert 1 not in set(table["class_index"]) and len(table) == 2 * 2
    assert table_provenance(d / "imp.parquet")["empty_classes"] == [1]
    # grouping by label: every class has images, nothing is left out, no warning
    info = run_importance(
        d / "f.h5", d / "model", d / "imp_label.h5", d / "imp_label.parquet", ImportanceSettings("label", 2)
    )
    assert info["empty_classes"] == [] and capsys.readouterr().err == ""
    assert read_importance(d / "imp_label.h5")["empty_classes"].tolist() == []
    assert sorted(set(read_table(d / "imp_label.parquet")["class_index"])) == [0, 1, 2]


def test_subsets_and_task_pages_leave_the_class_out(never_predicted):
    from spurlab.discover.annotate import run_annotation_tasks
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.discover.subsets import SubsetSettings, run_subsets
    from spurlab.discover.subsets_file import SalientSubsets

    d, s = never_predicted
    run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("prediction", 2))
    settings = SubsetSettings(fraction=0.5, min_images=1, max_images=2, top_images=1, attack="paper")
    info = run_subsets(d / "model", d / "real.h5", d / "f.h5", d / "imp.h5", d / "sub.h5", settings, "cpu", False)
    assert info["pairs"] == 2 * 2 and info["classes_without_features"] == ["goldfish"]
    with SalientSubsets(d / "sub.h5") as sub:
        pairs = sub.pair_table()
        assert sorted(set(pairs["class"])) == [0, 2] and json.loads(sub.attrs["classes_without_features"]) == [1]
        # each pair's slice of members is its own (positions follow the kept classes, no gap)
        assert pairs["start"].tolist() == list(np.r_[0, np.cumsum(pairs["count"])[:-1]])
        for p, row in pairs.iterrows():
            assert (s.labels[sub.members(p, nams=False)["row"]] == row["class"]).all()
    n = run_annotation_tasks(d / "sub.h5", d / "real.h5", d / "tasks")
    assert n == 4
    pages = sorted(p.name for p in (d / "tasks").glob("class*_feature*.html"))
    assert len(pages) == 4 and not any(p.startswith("class0001_") for p in pages)
    manifest = (d / "tasks" / "manifest.csv").read_text()
    assert "goldfish" not in manifest and "tench" in manifest and "shark" in manifest


def test_every_group_empty_is_an_error(tmp_path):
    """Grouping `correct` with a model that predicts only class 0, which has no image: no class has
    a correctly classified image."""
    import torch

    from spurlab.data.folders import index_image_folder
    from spurlab.data.imagesets import ImageSet
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.features import cache_features

    root, synsets = _folder(tmp_path / "imgs", empty=(WNIDS[0],))
    index_image_folder(root, tmp_path / "real.h5", image_size=32, synsets=synsets)
    s = ImageSet(tmp_path / "real.h5")
    assert not (s.labels == 0).any()
    model, sha = _model(tmp_path, {0: 1e4})
    cache_features(model, "m", sha, s, tmp_path / "f.h5", torch.device("cpu"), progress=False)
    with pytest.raises(SpurlabError, match=r"f\.h5: no image is correctly classified as any of the 3 classes"):
        run_importance(tmp_path / "f.h5", tmp_path / "model", tmp_path / "imp.h5", tmp_path / "imp.parquet", ImportanceSettings("correct", 2))  # fmt: skip
    assert not (tmp_path / "imp.h5").exists() and not (tmp_path / "imp.parquet").exists()
