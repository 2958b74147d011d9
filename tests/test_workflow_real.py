"""The real-data path (issue #4): an ImageNet-style folder and an imported checkpoint run the same
Salient ImageNet rules, with human annotation in the published MTurk layout."""

import csv
import json

import numpy as np
import pytest
import yaml

from spurlab.data.imagesets import ImageSet
from tests.conftest import ROOT
from tests.test_workflow import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
TOP_K = 2
WORKERS = 5


def fake_imagenet(root, n_per_class: int, seed: int) -> None:
    """`root/<wnid>/<wnid>_NN.png`: 32x32 random rectangles and disks of random colours on a
    background whose tint depends on the class (so the classes differ)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        (root / wnid).mkdir(parents=True)
        for k in range(n_per_class):
            bg = np.clip(np.array([40, 90, 140, 190])[c] + rng.integers(-20, 20, 3), 0, 255)
            im = Image.new("RGB", (32, 32), tuple(int(v) for v in bg))
            d = ImageDraw.Draw(im)
            for _ in range(2):
                x0, y0 = rng.integers(0, 22, 2)
                w, h = rng.integers(6, 12, 2)
                box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=colour)
            im.save(root / wnid / f"{wnid}_{k:02d}.png")


def real_config(tmp, answers, source: str) -> dict:
    """A standalone config: tiny.yaml with the imported model as the only model (merging an override
    file into tiny.yaml would keep tiny's trained models), two folder sets and human annotation."""
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    cfg["folders"] = {
        "real_train": {"root": str(tmp / "imagenet" / "train"), "image_size": 32},
        "real_test": {"root": str(tmp / "imagenet" / "val"), "image_size": 32},
    }
    cfg["models"] = {
        "imported": {
            "arch": "resnet10_small",
            "checkpoint": {"path": str(tmp / "ckpt.pt"), "layout": "state_dict", "num_classes": 4, "input_size": 32},
        }
    }
    cfg["features"]["sets"] = ["real_train", "real_test"]
    sal = cfg["salient"]
    sal.update(model="imported", importance_set="real_train", subset_set="real_test", grouping="label", top_k=TOP_K)
    sal["annotation"].update(source=source, human_csv=str(answers) if source == "human" else None)
    sal["noise"].update(models=None, sigmas=[0, 0.25], l2_match_sigmas=[0.3, 0.45])
    cfg["spuriosity"].update(sets=["real_train", "real_test"], stats_set="real_train", gap_set="real_test",
                             heldout_set=None, k=3)  # fmt: skip
    cfg["lightweight"]["enabled"] = False
    return cfg


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    import os
    import sys
    from pathlib import Path

    import timm
    import torch

    import spurlab.models  # noqa: F401  (registers resnet10_small with timm)

    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    tmp = tmp_path_factory.mktemp("real")
    fake_imagenet(tmp / "imagenet" / "train", 10, seed=0)
    fake_imagenet(tmp / "imagenet" / "val", 10, seed=1)
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet10_small", num_classes=4).state_dict(), tmp / "ckpt.pt")
    answers = tmp / "answers.csv"
    human = tmp / "human.yaml"
    human.write_text(yaml.safe_dump(real_config(tmp, answers, "human")))
    work = tmp / "work"
    profile = str(ROOT / "workflow" / "profiles" / "default")
    # step 1: discovery up to the task pages; the pairs to annotate are known only now
    snakemake(work, "results/salient/tasks/manifest.csv", "results/datasets/real_test.png", "--cores", "2",
              "--configfile", str(human), "--workflow-profile", profile, env=env)  # fmt: skip
    with open(work / "results/salient/tasks/manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    # step 2: answers in the published MTurk layout; rank-1 features: 3 of 5 workers say background
    cols = ["WorkerId", "Input.wordnet_id", "Input.class_index", "Input.feature_index", "Input.feature_rank",
            "Answer.main", "Answer.confidence", "Answer.reasons"]  # fmt: skip
    with open(answers, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in manifest:
            for k in range(WORKERS):
                spurious = row["feature_rank"] == "1" and k < 3
                w.writerow([f"W{k}", row["wordnet_id"], row["class_index"], row["feature_index"], row["feature_rank"],
                            "background" if spurious else "main_object", "4.0", "the highlighted region"])  # fmt: skip
    snakemake(work, "salient", "--cores", "2", "--configfile", str(human), "--workflow-profile", profile, env=env)
    return tmp, work, human, manifest, env


def test_index_sets_and_task_manifest(real_run):
    tmp, work, _, manifest, _ = real_run
    for name in ("real_train", "real_test"):
        with ImageSet(work / f"results/datasets/{name}.h5") as s:
            assert s.kind == "index" and len(s) == 40 and s.class_names == WNIDS and s.image_size == 32
        assert (work / f"logs/index_folder/{name}.log").exists() and (work / f"benchmarks/index_folder/{name}.tsv").exists()
    assert (work / "results/datasets/real_test.png").stat().st_size > 1000  # contact sheet of an index set
    meta = json.loads((work / "results/models/imported/meta.json").read_text())
    assert meta["input_size"] == 32 and meta["imported"]["layout"] == "state_dict"
    assert len(manifest) == len(WNIDS) * TOP_K
    assert {r["wordnet_id"] for r in manifest} == set(WNIDS)
    assert sorted(r["feature_rank"] for r in manifest) == sorted(["1", "2"] * len(WNIDS))
    for r in manifest:
        assert (work / "results/salient/tasks" / r["page"]).is_file()


def test_salient_on_real_data_with_human_answers(real_run):
    _, work, _, manifest, _ = real_run
    summary = json.loads((work / "results/salient/summary.json").read_text())
    assert summary["annotation_source"] == "human"
    assert summary["n_pairs"] == len(manifest)
    assert summary["n_spurious"] == sum(r["feature_rank"] == "1" for r in manifest) == len(WNIDS)
    assert summary["auto_annotator_precision"] is None and summary["planted_cues_recovered"] is None
    assert set(summary["noise"]) == {"imported"} and summary["noise"]["imported"]
    assert (work / "results/salient/noise/imported.parquet").exists()
    assert (work / "results/salient/noise.png").stat().st_size > 1000


def test_auto_annotation_on_real_data_fails_clearly(real_run):
    tmp, work, human, _, env = real_run
    # the same config path (rules take it as a param: another path would rerun every salient stage)
    kept = human.read_text()
    human.write_text(yaml.safe_dump(real_config(tmp, None, "auto")))
    try:
        r = snakemake(work, "results/salient/annotations.parquet", "--cores", "1", "--configfile", str(human),
                      "--forcerun", "annotations", env=env, check=False)  # fmt: skip
    finally:
        human.write_text(kept)
    assert r.returncode != 0
    assert "Finished job" not in r.stdout + r.stderr  # annotate was the only job, and it failed
    log = (work / "logs/salient/annotations.log").read_text().strip().splitlines()
    assert len(log) == 1 and log[0].startswith("spurlab: error: ")
    assert "automatic annotation needs object masks" in log[0] and "salient.annotation.source: human" in log[0]


def test_spuriosity_on_real_data_with_human_answers(real_run):
    """The same Spuriosity Rankings rules on index sets, an imported model and human annotations:
    no planted truth, one model (no effective robustness or gap correlation), no held-out set."""
    _, work, human, _, env = real_run
    snakemake(work, "spuriosity", "--cores", "2", "--configfile", str(human), env=env)
    s = json.loads((work / "results/spuriosity/summary.json").read_text())
    assert s["gap_set"] == "real_test" and s["k"] == 3 and s["spuriosity_auc_mean"] is None
    assert set(s["models"]) == {"imported"} and s["models"]["imported"]["effective_robustness"] is None
    assert s["gap_correlation_mean"] is None and "gap_vs_counterfactual_r" not in s
    assert sorted(s["ranked_classes"]) == sorted(WNIDS)  # every class has its rank-1 feature annotated spurious
    assert set(s["tuning"]["imported"]) == {"low_spuriosity", "random", "misclassified"}
    assert "test_gap_after" not in s["tuning"]["imported"]["random"]
