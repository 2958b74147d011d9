"""Reliability of the workflow (issue #11) on a reduced tiny config: the clean runs go through image
sets, training with per-epoch checkpoints, feature caches and the Salient ImageNet stage
(importance, D(i, j), annotations, masks, noise tests, summary); the partial-rerun and kill tests
work on its `models` target. The later stages' determinism and kill recovery are measured by
bench/kill_resume.py (docs/reliability.md), whose cost does not fit the suite's budget:

- partial reruns: nothing touched reruns nothing; `--forcerun <rule>` reruns exactly that rule and
  its dependants; a changed config value reruns exactly the stage it reaches as `params` and what
  depends on it;
- determinism: two clean runs give the same bytes for every file under results/ except the
  documented timing records (compared without their timing fields);
- kill and rerun: SIGKILL of snakemake and its jobs at 5 seeded moments, a rerun after each; then
  every output opens, every hash verifies, everything equals the clean run, and training resumed
  from its last epoch checkpoint.
"""

from __future__ import annotations

import random
import shutil

import pytest
import yaml

from tests.conftest import load_yaml
from tests.reliability import workflow as wf

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
TARGET = ["models"]
CLEAN_TARGETS = ["models", "salient"]  # spuriosity, npca, bam: bench/kill_resume.py (suite time)


def reliability_config() -> dict:
    """tiny.yaml cut down: the core image sets, two models, three epochs, small later stages; no
    BAM, contamination, lightweight or post hoc stages."""
    cfg = load_yaml("tiny.yaml")
    cfg["datasets"]["n_images"] = {"train": 160, "val": 40, "test": 40, "cue_only": 20}
    cfg["bam"]["enabled"] = False
    cfg["contamination"]["enabled"] = False
    cfg["lightweight"]["enabled"] = False
    cfg["posthoc"]["enabled"] = False
    # Salient ImageNet, small: determinism is about every file, not about how much each holds
    cfg["salient"]["top_k"] = 2
    cfg["salient"]["subset"]["max_images"] = 6
    cfg["salient"]["noise"]["models"] = ["robust_tiny"]
    cfg["train"]["epochs"] = 3
    cfg["features"]["sets"] = ["train", "test"]  # what salient.importance_set and spuriosity.sets need
    return cfg


def write(path, cfg) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One clean run, shared by every test here (they only dry-run against it or compare to it)."""
    d = tmp_path_factory.mktemp("reliability")
    cfg = write(d / "config.yaml", reliability_config())
    wf.run(d / "clean", CLEAN_TARGETS, [cfg])
    return d, cfg


def test_touching_nothing_reruns_nothing(clean):
    d, cfg = clean
    r = wf.run(d / "clean", CLEAN_TARGETS, [cfg], "-n")
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("train", {"results/models/{m}/model.safetensors", "results/models/{m}/meta.json", "results/features/{m}/train.h5",
                   "results/features/{m}/test.h5", "results/features/{m}/counterfactual.h5", "results/models/summary.json"}),
        ("features", {"results/features/{m}/train.h5", "results/features/{m}/test.h5",
                      "results/features/{m}/counterfactual.h5", "results/models/summary.json"}),
        ("models_summary", {"results/models/summary.json"}),
    ],
)  # fmt: skip
def test_forcerun_reruns_exactly_the_rule_and_its_dependants(clean, rule, expected):
    d, cfg = clean
    want = {p.format(m=m) for p in expected for m in ("robust_tiny", "erm_tiny")}
    assert wf.planned_outputs(d / "clean", TARGET, [cfg], "--forcerun", rule) == want


def test_config_change_reruns_exactly_that_stage_and_downstream(clean):
    """The changed value goes into the same config file: rules get the config file names as params
    too, so the same settings under another file name would rerun everything (docs/reliability.md)."""
    d, cfg = clean
    original = (d / "config.yaml").read_text()
    try:
        # one model's seed: its training, its features and the summary; not the other model, no image set
        c = reliability_config()
        c["models"]["erm_tiny"]["seed"] = 7
        write(d / "config.yaml", c)
        assert wf.planned_outputs(d / "clean", TARGET, [cfg]) == {
            "results/models/erm_tiny/model.safetensors", "results/models/erm_tiny/meta.json",
            "results/features/erm_tiny/train.h5", "results/features/erm_tiny/test.h5",
            "results/features/erm_tiny/counterfactual.h5", "results/models/summary.json",
        }  # fmt: skip
        # a features setting: every feature cache and the summary; no training, no image set
        c = reliability_config()
        c["features"]["block_rows"] = 64
        write(d / "config.yaml", c)
        assert wf.planned_outputs(d / "clean", TARGET, [cfg]) == {
            f"results/features/{m}/{s}.h5"
            for m in ("robust_tiny", "erm_tiny")
            for s in ("train", "test", "counterfactual")
        } | {"results/models/summary.json"}
    finally:
        (d / "config.yaml").write_text(original)
    r = wf.run(d / "clean", TARGET, [cfg], "-n")
    assert "Nothing to be done" in r.stdout + r.stderr


def test_two_clean_runs_are_identical(clean):
    d, cfg = clean
    wf.run(d / "second", CLEAN_TARGETS, [cfg])
    assert wf.compare_trees(d / "clean", d / "second") == []
    # the exclusions are only timing records: everything else is compared bytewise
    names = wf.files(d / "clean")
    assert sum(wf.is_excluded(k) for k in names) <= 2 * 3 + 2 * 2 + 1  # meta, 3 epochs and summary
    assert not any(k.endswith((".h5", ".parquet", ".png")) and wf.is_excluded(k) for k in names)
    for stage in ("datasets", "models", "features", "salient"):  # every stage of the targets was compared
        assert any(
            k.startswith(f"results/{stage}/") and k.endswith((".h5", ".parquet", ".safetensors")) for k in names
        ), stage
    print(f"{len(names)} files under results/ compared, {sum(map(wf.is_excluded, names))} without their timing fields")


def test_killed_runs_recover_and_match_the_clean_run(clean):
    """SIGKILL snakemake and its jobs 5 times (the first once a model has its first epoch checkpoint,
    then at seeded random moments), rerun with --rerun-incomplete after each, then finish."""
    d, cfg = clean
    work = d / "killed"
    rng = random.Random(11)
    ckpts = lambda: list((work / "results/models").glob("*/checkpoints/epoch_001.pt"))  # noqa: E731
    kills = 0
    for i in range(5):
        if i == 0:
            when = lambda t: bool(ckpts())  # noqa: E731 - mid-training, after epoch 1
        else:
            delay = rng.uniform(1.0, 12.0)
            when = lambda t, delay=delay: t > delay  # noqa: E731
        kills += wf.run_with_kill(work, TARGET, [cfg], when)
        wf.unlock(work, TARGET, [cfg])
    assert kills >= 3, "the run finished before most kills: the moments are too late to test anything"
    wf.run(work, TARGET, [cfg], "--rerun-incomplete")
    assert wf.verify_outputs(work) >= 10
    # the clean run went further (CLEAN_TARGETS): the killed one has each of its models-stage files
    killed, full = wf.files(work), wf.files(d / "clean")
    assert killed.keys() <= full.keys() and wf.compare_trees(d / "clean", work, common_only=True) == []
    # the model killed after its first epoch resumed from a checkpoint instead of starting over
    resumed = [p for p in (work / "logs/train").glob("*.log") if "resuming from epoch" in p.read_text()]
    assert resumed, "no training log shows a resume"
    r = wf.run(work, TARGET, [cfg], "-n")
    assert "Nothing to be done" in r.stdout + r.stderr
    shutil.rmtree(work / "results/datasets")  # keep the temporary directory small
