"""The Snakemake workflow itself: runs, reruns nothing, lints clean, rejects bad configs early."""

import json
import subprocess

import pandas as pd
import pytest
import yaml

from spurlab.config import load_config, set_names
from spurlab.data.imagesets import ImageSet
from tests.conftest import ROOT

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, env, check=True):
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import os
    import sys
    from pathlib import Path

    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    work = tmp_path_factory.mktemp("wf")
    cfg = str(ROOT / "config" / "tiny.yaml")
    profile = str(ROOT / "workflow" / "profiles" / "default")
    snakemake(work, "datasets", "--cores", "2", "--configfile", cfg, "--workflow-profile", profile, env=env)
    return work, cfg, env


@pytest.mark.slow
def test_datasets_target_on_tiny(tiny_run):
    work, cfg, _ = tiny_run
    names = set_names(load_config(cfg))
    summary = json.loads((work / "results/datasets/summary.json").read_text())
    assert set(summary["sets"]) == set(names)
    assert summary["images_per_second"] > 0
    for name in names:
        entry = summary["sets"][name]
        with ImageSet(work / f"results/datasets/{name}.h5") as s:
            assert entry["sha256"] == s.sha256 and entry["n_images"] == len(s) and entry["image_size"] == 32
        assert (work / f"results/datasets/{name}.png").stat().st_size > 1000
        assert (work / f"logs/image_set/{name}.log").exists()
        assert (work / f"benchmarks/image_set/{name}.tsv").exists()
    rates = summary["sets"]["train"]["cue_rates"]
    assert rates["disk"]["water_bg"] > 0.7 and rates["star"]["hospital_tag"] < 0.2
    # nothing temporary left behind
    assert not list((work / "results").rglob("*.tmp"))


@pytest.mark.slow
def test_rerun_does_nothing_and_forcerun_is_byte_identical(tiny_run):
    work, cfg, env = tiny_run
    before = (work / "results/datasets/train.h5").read_bytes()
    r = snakemake(work, "datasets", "--cores", "2", "--configfile", cfg, "-n", env=env)
    assert "Nothing to be done" in r.stdout + r.stderr
    snakemake(
        work,
        "results/datasets/train.h5",
        "--cores",
        "2",
        "--configfile",
        cfg,
        "--forcerun",
        "image_set",
        "--allowed-rules",
        "image_set",
        env=env,
    )
    assert (work / "results/datasets/train.h5").read_bytes() == before


@pytest.mark.slow
def test_bad_config_fails_before_any_job(tmp_path, venv_env):
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    cfg["datasets"]["cue_table"]["octagon"] = {"cue": "water_bg", "p_in_class": 0.9, "p_elsewhere": 0.05}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, "--cores", "1", "--configfile", str(bad), env=venv_env, check=False)
    assert r.returncode != 0
    assert "datasets.cue_table.octagon: class 'octagon' is not in datasets.classes" in r.stderr
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    cfg["datasets"]["typo"] = 1
    bad.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, "--cores", "1", "--configfile", str(bad), env=venv_env, check=False)
    assert r.returncode != 0 and "typo" in r.stderr
    r = snakemake(tmp_path, "--cores", "1", "--config", "seed=3", env=venv_env, check=False)
    assert r.returncode != 0 and "--config KEY=VALUE overrides are not forwarded" in r.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("configs", [["config.yaml"], ["tiny.yaml"]])
def test_dry_run(tmp_path, venv_env, configs):
    paths = [ROOT / "config" / c for c in configs]
    r = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", *map(str, paths), env=venv_env)
    n_sets = len(set_names(load_config(paths)))
    import re

    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", r.stdout, flags=re.M))
    assert counts["image_set"] == str(n_sets) and counts["contact_sheet"] == str(n_sets)
    assert counts["datasets_summary"] == "1"


def test_default_config_is_used_without_configfile(tmp_path, venv_env):
    r = snakemake(tmp_path, "-n", "--cores", "1", env=venv_env)
    assert "contam_stripe_train" in r.stdout  # only config/config.yaml defines the stripe signal


def test_lint_and_format(venv_env):
    r = subprocess.run(["snakemake", "--lint", "--configfile", str(ROOT / "config" / "tiny.yaml")],
                       cwd=ROOT, capture_output=True, text=True, env=venv_env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations" in r.stdout + r.stderr
    r = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "rules/"], cwd=ROOT, capture_output=True, text=True, env=venv_env
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_slurm_profile_settings():
    prof = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue" and prof["slurm-no-account"] is True
    assert "slurm_account" not in prof["default-resources"]
    assert "gpu" not in prof.get("resources", {})


def test_every_rule_has_log_benchmark_resources():
    import re

    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=[ \t]*rule )", smk.read_text())[1:]:
            name = block.split(":")[0].split()[1]
            if "shell:" not in block:
                continue  # target rules only collect inputs
            for key in ("log:", "benchmark:", "resources:", "conda:", "threads:"):
                assert key in block, f"rule {name} in {smk.name} lacks {key}"
            assert re.search(r'"spurlab [a-z-]+', block), f"rule {name} must call the spurlab CLI"


@pytest.mark.slow
def test_models_target_on_tiny(tiny_run):
    """Train the tiny suite (one robust, one ERM model), cache features, summarise."""
    work, cfg, env = tiny_run
    snakemake(work, "models", "--cores", "2", "--configfile", cfg, env=env)
    summary = json.loads((work / "results/models/summary.json").read_text())
    assert set(summary["models"]) == {"robust_tiny", "erm_tiny"}
    rob, erm = summary["models"]["robust_tiny"], summary["models"]["erm_tiny"]
    assert (
        rob["robust"] and not erm["robust"] and 0 <= rob["adv_acc"] <= 1 and rob["eps"] == pytest.approx(3 * 32 / 224)
    )
    assert set(erm["counterfactual_gap"]) == set(load_config(cfg)["datasets"]["classes"])
    assert all(-1 <= g <= 1 for g in erm["counterfactual_gap"].values())
    assert summary["erm_models"] == ["erm_tiny"] and -1 <= summary["cue_class_mean_gap"] <= 1
    for model in ("robust_tiny", "erm_tiny"):
        meta = json.loads((work / f"results/models/{model}/meta.json").read_text())
        assert (
            len(meta["history"]) == 2
            and meta["data"]["train_sha256"] == ImageSet(work / "results/datasets/train.h5").sha256
        )
        assert sorted(p.name for p in (work / f"results/models/{model}/checkpoints").iterdir()) == [
            "epoch_001.pt",
            "epoch_002.pt",
        ]
        for s in load_config(cfg)["features"]["sets"]:
            assert (work / f"results/features/{model}/{s}.h5").exists()


@pytest.mark.slow
def test_salient_target_on_tiny(tiny_run):
    """Salient ImageNet end to end: discovery, task pages, annotations, eq. 2 masks, noise, summary."""
    work, cfg, env = tiny_run
    snakemake(work, "salient", "--cores", "2", "--configfile", cfg, env=env)
    summary = json.loads((work / "results/salient/summary.json").read_text())
    c = load_config(cfg)
    n_classes, k = len(c["datasets"]["classes"]), c["salient"]["top_k"]
    assert summary["n_pairs"] == n_classes * k and 0 <= summary["n_spurious"] <= summary["n_pairs"]
    assert summary["annotation_source"] == "auto"
    for key in ("auto_annotator_precision", "auto_annotator_recall", "planted_cues_recovered"):
        assert summary[key] is None or summary[key] != summary[key] or 0 <= summary[key] <= 1  # NaN: nothing to score
    assert set(summary["noise"]) == set(c["models"]) and summary["erm_models"] == ["erm_tiny"]
    manifest = (work / "results/salient/tasks/manifest.csv").read_text().splitlines()
    assert len(manifest) == n_classes * k + 1
    for f in ("importance.csv", "annotations.csv", "masks.h5", "noise.png", "features.png", "noise/erm_tiny.csv"):
        assert (work / "results/salient" / f).stat().st_size > 0
    assert (work / "benchmarks/salient/subsets.0.tsv").exists() and (work / "logs/salient/summary.log").exists()
    assert not any((work / "results/salient/shards").glob("*.h5"))  # temporary shards removed after the merge
    r = snakemake(work, "salient", "--cores", "2", "--configfile", cfg, "-n", env=env)
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.slow
def test_npca_bases_on_tiny(tiny_run):
    """Neural PCA bases of the discovery model; the logit identity holds on its cached train rows."""
    import numpy as np

    from spurlab.data.feature_cache import model_checkpoint_sha256, open_features
    from spurlab.discover.npca import NPCABases, alphas, residual, weighted_features
    from spurlab.models import load_model

    work, cfg, env = tiny_run
    snakemake(work, "results/npca/bases.h5", "--cores", "2", "--configfile", cfg, env=env)
    c = load_config(cfg)
    mdir = work / "results/models" / c["salient"]["model"]
    W, b = (t.detach().double().numpy() for t in load_model(mdir)[0].head())
    with NPCABases(work / "results/npca/bases.h5", model_checkpoint_sha256(mdir)) as bases, \
            open_features(work / f"results/features/{c['salient']['model']}/train.h5", model_dir=mdir) as fc:  # fmt: skip
        phi, logits, labels = fc["features"], fc["logits"], fc["labels"]
        assert len(bases.classes) == len(c["datasets"]["classes"])
        for k in bases.classes:
            mu, V, _ = bases.get(k)
            assert V.shape[0] <= c["npca"]["components"]
            a = weighted_features(phi[labels == k], W, k)
            f = alphas(a, mu, V).sum(1) + residual(a, mu, V) + mu.sum() + b[k]
            np.testing.assert_allclose(f, logits[labels == k, k], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_spuriosity_target_on_tiny(tiny_run):
    """Spuriosity Rankings end to end: rankings, gaps, corruptions, label noise, head tuning, the
    lightweight-discovery task, summary and figures; a rerun has nothing to do."""
    work, cfg, env = tiny_run
    snakemake(work, "spuriosity", "--cores", "2", "--configfile", cfg, env=env)
    c = load_config(cfg)
    s = json.loads((work / "results/spuriosity/summary.json").read_text())
    assert set(s["models"]) == set(c["models"]) and s["gap_set"] == c["spuriosity"]["gap_set"]
    for m in s["models"].values():
        assert all(-1 <= g <= 1 for g in m["class_gap"].values())
        assert set(m["class_gap_ci"]) == set(m["class_gap"])  # each class's gap with its interval (or null)
    assert set(s["tuning"]) == set(c["models"])
    for methods in s["tuning"].values():
        assert set(methods) == {"low_spuriosity", "random", "misclassified"}
        for e in methods.values():
            assert 0 <= e["acc_before"] <= 1 and 0 <= e["acc_after"] <= 1 and len(e["gap_after_trials"]) == 1
    lw = json.loads((work / "results/lightweight/summary.json").read_text())
    assert lw["classes"] == c["lightweight"]["datasets"]["classes"]
    assert lw["n_pairs"] == len(lw["classes"]) * c["salient"]["top_k"] and 0 <= lw["head_test_acc"] <= 1
    rankings = pd.read_parquet(work / "results/spuriosity/rankings.parquet")
    assert set(rankings["set"]) == set(c["spuriosity"]["sets"])
    for f in ("gaps.png", "tuning.png", "label_noise.png", "gap_correlations.csv", "corruptions/erm_tiny.csv",
              "tuning/erm_tiny.csv"):  # fmt: skip
        assert (work / "results/spuriosity" / f).stat().st_size > 0
    assert not list((work / "results").rglob("*.tmp"))
    r = snakemake(work, "spuriosity", "--cores", "2", "--configfile", cfg, "-n", env=env)
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.slow
def test_mitigation_target_on_tiny(tiny_run):
    """Group robustness end to end: every model's worst group in the models summary; per audited
    model the five heads with accuracy, spurious gap, worst group and the labels they needed;
    summary, table and figure; a forced rerun of the model's job writes the same bytes."""
    work, cfg, env = tiny_run
    snakemake(work, "models", "mitigation", "--cores", "2", "--configfile", cfg, env=env)
    c = load_config(cfg)
    suite = json.loads((work / "results/models/summary.json").read_text())["models"]
    for e in suite.values():
        assert set(e["group_acc"]) == set(c["datasets"]["classes"])  # the control class: the control cue on/off
        accs = [v for g in e["group_acc"].values() for v in g.values()]
        assert len(accs) == 2 * len(c["datasets"]["classes"]) and min(accs) == e["worst_group_acc"]
        assert e["worst_group_acc"] <= e["mean_group_acc"] == pytest.approx(sum(accs) / len(accs), abs=1e-5)
    s = json.loads((work / "results/mitigation/summary.json").read_text())
    assert s["audited_models"] == ["erm_tiny"]
    methods = s["models"]["erm_tiny"]["methods"]
    assert s["method_order"] == ["erm", "dfr", "jtt", "low_spuriosity", "spufix"] and set(methods) == set(
        s["method_order"]
    )
    assert [methods[m]["labels_needed"] for m in s["method_order"]] == [
        "none",
        "group labels",
        "group labels",
        "none",
        "none",
    ]
    for e in methods.values():
        assert 0 <= e["worst_group_acc"] <= e["mean_group_acc"] <= 1 and 0 <= e["acc"] <= 1 and -1 <= e["gap"] <= 1
    # the ERM row is the model as trained: the models stage's numbers on the same images
    assert methods["erm"]["worst_group_acc"] == pytest.approx(suite["erm_tiny"]["worst_group_acc"], abs=1e-5)
    assert methods["erm"]["acc"] == pytest.approx(suite["erm_tiny"]["test_acc"], abs=1e-5)
    assert methods["low_spuriosity"]["trials"] == c["spuriosity"]["tuning"]["trials"]
    assert set(s["acceptance"]["dfr_raises_worst_group"]) == {"erm_tiny"}
    assert len(pd.read_parquet(work / "results/mitigation/table.parquet")) == 5
    for f in ("mitigation.png", "mitigation.svg", "table.csv", "erm_tiny.csv", "groups/erm_tiny.csv"):
        assert (work / "results/mitigation" / f).stat().st_size > 0
    outputs = ["erm_tiny.parquet", "groups/erm_tiny.parquet", "summary.json", "mitigation.png"]
    before = {f: (work / "results/mitigation" / f).read_bytes() for f in outputs}
    snakemake(work, "mitigation", "--cores", "2", "--configfile", cfg, "--forcerun", "group_robustness", env=env)
    assert {f: (work / "results/mitigation" / f).read_bytes() for f in outputs} == before
    assert (work / "benchmarks/mitigation/erm_tiny.tsv").exists() and (work / "logs/mitigation/summary.log").exists()
    r = snakemake(work, "mitigation", "--cores", "2", "--configfile", cfg, "-n", env=env)
    assert "Nothing to be done" in r.stdout + r.stderr
