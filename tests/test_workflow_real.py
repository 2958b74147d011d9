"""The real-data path at ImageNet's size: 1000 classes in ImageNet's layouts through
config/folders.yaml + config/imagenet.yaml (the end-to-end run on photographs is
tests/test_workflow_folders.py)."""

import json
import re

import numpy as np
import pytest
import yaml

from spurlab.data.imagesets import ImageSet
from tests.conftest import ROOT
from tests.test_workflow import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

N_WNIDS = 1000
SHARDS = 4  # class shards of the per-class stages in the 1000-class run


def fake_imagenet_1000(root, n_per_class: int, seed: int, corrupt: bool = False) -> list[str]:
    """`root/<wnid>/<wnid>_<k>.JPEG` for 1000 made-up wnids: tiny JPEGs (24 x 20, resized to 32 when
    read) whose colour depends on the class. `corrupt`: one more file that is not a JPEG at all.
    Returns the wnids (sorted: the class index order)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    wnids = [f"n{1440764 + 7919 * c:08d}" for c in range(N_WNIDS)]
    for c, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True)
        base = np.array([(37 * c) % 256, (91 * c) % 256, (151 * c) % 256])
        for k in range(n_per_class):
            img = np.clip(base + rng.integers(-25, 25, (20, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / wnid / f"{wnid}_{k}.JPEG", quality=85)
    if corrupt:
        (root / wnids[17] / f"{wnids[17]}_bad.JPEG").write_bytes(b"\xff\xd8 truncated, not a JPEG")
    return wnids


def madry_checkpoint(path, arch: str, num_classes: int, seed: int = 0) -> None:
    """A randomly initialised network saved in the robustness library's layout (the layout of
    config/imagenet.yaml's checkpoint): module.model.*, module.attacker.model.*, module.normalizer.*."""
    import timm
    import torch

    import spurlab.models  # noqa: F401  (registers the small archs with timm)

    torch.manual_seed(seed)
    net = timm.create_model(arch, num_classes=num_classes).state_dict()
    state = {f"module.model.{k}": v for k, v in net.items()}
    state |= {f"module.attacker.model.{k}": v.clone() for k, v in net.items()}
    state["module.normalizer.new_mean"] = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    state["module.normalizer.new_std"] = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.save({"model": state, "epoch": 1}, path)


def test_fake_imagenet_1000_classes(tmp_path, venv_env):
    """config/folders.yaml + config/imagenet.yaml + a small override (paths, 32 px, a small arch in
    the Madry layout): ImageNet's layouts with 1000 made-up wnids - a train tree with a corrupt file
    (skipped and listed), a flat val folder labelled by LOC_val_solution.csv, LOC_synset_mapping.txt
    as the wnid -> index map - run index -> features -> importance -> NPCA through Snakemake, then
    spuriosity rankings and gaps through the CLI, on CPU."""
    data = tmp_path / "data"
    wnids = fake_imagenet_1000(data / "train", 3, seed=0, corrupt=True)
    fake_imagenet_1000(data / "val_sorted", 2, seed=1)
    (data / "val").mkdir()
    truth = []
    for k, p in enumerate(sorted((data / "val_sorted").rglob("*.JPEG"), key=lambda p: p.name[::-1])):
        name = f"ILSVRC2012_val_{k + 1:08d}"
        p.rename(data / "val" / f"{name}.JPEG")
        truth.append(f"{name},{p.parent.name} 1 2 20 20\n")
    (data / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(truth))
    synsets = data / "LOC_synset_mapping.txt"
    synsets.write_text("".join(f"{w} class {c}, made up\n" for c, w in enumerate(wnids)))
    madry_checkpoint(tmp_path / "ckpt.pt", "resnet10_small", N_WNIDS)
    answers = tmp_path / "answers.csv"
    published = tmp_path / "spurious_components.npy"
    folder = {"image_size": 32, "synsets": str(synsets)}
    override = {
        "folders": {"images_train": {**folder, "root": str(data / "train"), "skip_bad_images": True},
                    "images_val": {**folder, "root": str(data / "val"), "val_labels": str(data / "LOC_val_solution.csv")},
                    "images_cue_only": {**folder, "root": str(data / "train")}},
        "compute": {"device": "cpu", "eval_batch_size": 500, "workers": 0, "class_shards": SHARDS},
        "models": {"discovery": {"arch": "resnet10_small",
                                       "checkpoint": {"path": str(tmp_path / "ckpt.pt"), "class_names": str(synsets),
                                                      "input_size": 32}}},
        "salient": {"top_k": 1, "grouping": "label", "subset": {"min_images": 1, "max_images": 2, "top_images": 1},
                    "annotation": {"human_csv": str(answers)}},
        "spuriosity": {"k": 1},
        "npca": {"published_components": str(published)},
    }  # fmt: skip
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    dry_override = {k: v for k, v in override.items() if k != "compute"}
    (tmp_path / "override_dry.yaml").write_text(yaml.safe_dump(dry_override))
    configs = [str(ROOT / "config/folders.yaml"), str(ROOT / "config/imagenet.yaml"), str(tmp_path / "override.yaml")]
    work = tmp_path / "work"
    # imagenet.yaml's own sharding: 50 jobs per per-class stage keep the 1000-class DAG small
    answers.touch()  # the dry run plans the annotation rules, which read the answers and the list
    published.touch()
    dry = snakemake(work, "salient", "npca", "spuriosity", "-n", "--cores", "2", "--configfile", *configs[:2],
                    str(tmp_path / "override_dry.yaml"), env=venv_env)  # fmt: skip
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, re.M))
    assert all(stats[r] == "50" for r in ("npca_bases", "salient_subsets", "npca_components", "noise"))
    assert int(stats["total"]) < 400
    answers.unlink()
    published.unlink()
    args = ("--cores", "2", "--configfile", *configs, "--workflow-profile", str(ROOT / "workflow/profiles/default"))
    snakemake(work, "results/salient/importance.parquet", "results/features/discovery/images_val.h5",
              "results/npca/bases.h5", *args, env=venv_env)  # fmt: skip

    with ImageSet(work / "results/datasets/images_train.h5") as s:
        assert len(s) == 3 * N_WNIDS and s.attrs["wnids"] == wnids and s.class_names[17] == "class 17, made up"
        assert s.attrs["skipped"] == [f"{wnids[17]}/{wnids[17]}_bad.JPEG"]
        assert s.labels.tolist() == np.repeat(np.arange(N_WNIDS), 3).tolist()
        assert s.images(5).shape == (32, 32, 3)
    meta = json.loads((work / "results/models/discovery/meta.json").read_text())
    assert meta["imported"]["layout"] == "madry" and meta["num_classes"] == N_WNIDS

    # Spuriosity through the same CLI the rules call, on an annotations table written here: the
    # rule path would first build D(i, j) with feature attacks for all 1000 pairs (minutes of CPU;
    # that path is covered on 4 classes above). Even classes: their top feature is spurious.
    import os
    import subprocess
    from pathlib import Path

    import pandas as pd

    from spurlab.discover.annotate import ANNOTATION_COLUMNS
    from spurlab.io.tables import write_table

    top = pd.read_parquet(work / "results/salient/importance.parquet")
    assert len(top) == N_WNIDS and (top["group_size"] == 3).all()
    ann = pd.DataFrame({"class_index": top["class_index"], "class_name": top["class_name"],
                        "feature_index": top["feature_index"], "feature_rank": top["rank"],
                        "label": np.where(top["class_index"] % 2 == 0, "spurious", "core"),
                        "kind": np.where(top["class_index"] % 2 == 0, "background", "main_object"),
                        "votes_main": 2, "votes_separate": 0, "votes_background": 3, "n_votes": 5,
                        "mean_confidence": 4.0, "source": "human"})  # fmt: skip
    write_table(ann[list(ANNOTATION_COLUMNS)], tmp_path / "annotations.parquet", {"test": True})
    cli = str(Path(venv_env["PATH"].split(os.pathsep)[0]) / "spurlab")
    feats = [str(work / f"results/features/discovery/images_{s}.h5") for s in ("train", "val")]
    model_dir = str(work / "results/models/discovery")
    subprocess.run([cli, "spuriosity-rankings", "--config", *configs, "--annotations", str(tmp_path / "annotations.parquet"),
                    "--model-dir", model_dir, "--sets", "images_train", "images_val", "--features", *feats,
                    "--imagesets", *(str(work / f"results/datasets/images_{s}.h5") for s in ("train", "val")),
                    "--out", str(tmp_path / "rankings.parquet")],
                   check=True, env=venv_env, capture_output=True)  # fmt: skip
    subprocess.run([cli, "spurious-gaps", "--config", *configs, "--rankings", str(tmp_path / "rankings.parquet"),
                    "--models", "discovery", "--model-dirs", model_dir, "--features", feats[1],
                    "--out", str(tmp_path / "gaps.parquet"), "--out-models", str(tmp_path / "gap_models.parquet"),
                    "--out-correlations", str(tmp_path / "gap_corr.parquet")], check=True, env=venv_env,
                   capture_output=True)  # fmt: skip

    import h5py

    from spurlab.discover.npca import NPCABases
    from spurlab.io.tables import read_table

    with ImageSet(work / "results/datasets/images_val.h5") as s:
        assert len(s) == 2 * N_WNIDS and s.attrs["wnids"] == wnids and s.attrs["skipped"] == []
        assert np.bincount(s.labels).tolist() == [2] * N_WNIDS  # every flat file found its class
        row = [p.decode() for p in s.f["paths"][:]].index(str(data / "val" / "ILSVRC2012_val_00000001.JPEG"))
        assert wnids[s.labels[row]] == truth[0].split(",")[1].split()[0]

    rank = read_table(tmp_path / "rankings.parquet")
    assert len(rank) == 5 * N_WNIDS and set(rank["set"]) == {"images_train", "images_val"}
    ranked = rank[rank["spuriosity"].notna()]
    assert set(ranked["class_index"]) == set(range(0, N_WNIDS, 2))  # exactly the classes answered spurious
    assert (
        ranked.groupby(["set", "class_index"])["rank"].max() == ranked.groupby(["set", "class_index"]).size() - 1
    ).all()
    j = int(top.loc[top["class_index"] == 998, "feature_index"].iloc[0])  # a z-score by hand, class 998
    with h5py.File(feats[0], "r") as f:
        r = f["features"][np.flatnonzero(f["labels"][:] == 998), j].astype(np.float64)
    got = rank[(rank["set"] == "images_train") & (rank["class_index"] == 998)].sort_values("row")["spuriosity"]
    np.testing.assert_allclose(got, (r - r.mean()) / (r.std() if r.std() > 0 else 1.0), atol=1e-9)
    gaps = read_table(tmp_path / "gaps.parquet")
    assert len(gaps) == N_WNIDS // 2 and gaps["gap"].between(-1, 1).all() and (gaps["k"] == 1).all()
    assert not (work / "results/npca/shards").exists() or not any((work / "results/npca/shards").iterdir())
    assert sorted(p.name for p in (work / "logs/npca").glob("bases.*.log")) == [f"bases.{i}.log" for i in range(SHARDS)]
    with NPCABases(work / "results/npca/bases.h5") as b:  # the merged shards: every class, in order
        assert b.classes == list(range(N_WNIDS)) and b.count(999) == 3
        mu, V, ev = b.get(0)
        assert V.shape[0] == 2 and (np.diff(ev) <= 0).all()  # 3 images: at most 2 components
