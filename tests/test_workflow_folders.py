"""Your model, your data: the README's commands on photographs, end to end.

An ImageNet-style train tree, a flat val folder and a Spurious ImageNet-style cue-only folder made
from scikit-image's bundled photographs (a corner tag planted in one class), a small model trained
on them and saved in two layouts (plain state dict; robustness library), imported, then `salient`
with answers in the published MTurk layout (some exported pairs unanswered, some answers to pairs
never exported), `spuriosity`, `npca` with the cue-only folder and human component answers, and the
report: `config/folders.yaml` plus a small override, run from a checkout-like directory with the
exact commands of the README's "Your model, your data" section.
"""

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.photo_data import make_photo_folders, train_photo_model

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

IMAGE_SIZE = 48
BASE = "config/folders.yaml"
# the README's commands, verbatim (test_readme_shows_these_commands); --cores is set to this machine
VALIDATE = "spurlab validate-config -c config/folders.yaml my.yaml"
DRY_RUN = "snakemake -n --configfile config/folders.yaml my.yaml"
SALIENT = "snakemake salient --cores 4 --configfile config/folders.yaml my.yaml"
IMPORT = ("spurlab import-annotations --csv data/answers/salient.csv --subsets results/salient/subsets.h5 "
          "--out results/salient/answers.parquet --summary results/salient/answers.json")  # fmt: skip
RUN_ALL = "snakemake --cores 4 --configfile config/folders.yaml my.yaml"
COMMANDS = (VALIDATE, DRY_RUN, SALIENT, IMPORT, RUN_ALL)
BENCHMARK_RULES = ("image_set", "train", "models_summary", "contact_sheet_benchmark", "lightweight", "bam_",
                   "posthoc_", "group_robustness", "mitigation")  # fmt: skip
MTURK = ["WorkerId", "Input.wordnet_id", "Input.class_index", "Input.feature_index", "Input.feature_rank",
         "Answer.main", "Answer.confidence", "Answer.reasons"]  # fmt: skip


def override(checkpoints: dict) -> dict:
    """my.yaml: what differs from config/folders.yaml for 48-px photos of 4 classes and two models."""
    model = {"arch": checkpoints["arch"], "checkpoint": {"layout": "auto", "num_classes": 4,
             "class_names": "data/synsets.txt", "input_size": IMAGE_SIZE}}  # fmt: skip
    return {
        "folders": {name: {"image_size": IMAGE_SIZE} for name in ("images_train", "images_val", "images_cue_only")},
        "compute": {"eval_batch_size": 64, "workers": 0},
        "models": {
            "discovery": {**model, "checkpoint": {**model["checkpoint"], "path": "checkpoints/robustness_layout.pt"}},
            "yours": {**model, "checkpoint": {**model["checkpoint"], "path": "checkpoints/yours/plain_state_dict.pt"}},
        },
        "salient": {
            "top_k": 2,
            "subset": {"fraction": 0.5, "min_images": 3, "max_images": 10, "top_images": 3},
            "annotation": {"min_coverage": 0.5},
            "noise": {"sigmas": [0, 0.5], "l2_match_sigmas": [0.3, 0.45]},
        },
        "spuriosity": {"k": 3, "tuning": {"k": 5, "max_epochs": 3, "batch_size": 16, "trials": 1}},
        "npca": {
            "components": 8,
            "oversample": 4,
            "npfv": {"top_b": 3, "keep": 2, "eps_224": 30.0, "steps": 4},
            "top_images": 3,
            "neurons_top": 2,
            "retrieval": {"max_images": 10, "validation_top": 5},
        },  # fmt: skip
    }


def run(work: Path, command: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    cmd = shlex.split(command.replace("--cores 4", "--cores 2"))
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{command} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def answer(path: Path, manifest: Path, spurious: callable, skip: callable = lambda row: False,
           extra: list | None = None) -> list[dict]:  # fmt: skip
    """Five workers per manifest row in the published layout; 3 of 5 say background where
    `spurious(row)`; rows where `skip(row)` get no answers. Returns the manifest rows."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(MTURK)
        for row in rows:
            if skip(row):
                continue
            for k in range(5):
                main = "background" if spurious(row) and k < 3 else "main_object"
                w.writerow([f"W{k}", row["wordnet_id"], row["class_index"], row["feature_index"], row["feature_rank"],
                            main, "4.0", "the highlighted region"])  # fmt: skip
        w.writerows(extra or [])
    return rows


@pytest.fixture(scope="module")
def folders_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("yours")
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):  # a checkout, as a user has it
        (work / name).symlink_to(ROOT / name)
    scenario = make_photo_folders(work / "data", image_size=IMAGE_SIZE, seed=0)
    # the discovery model in the robustness library's layout, the audited one (another seed) as a state dict
    model = train_photo_model(work / "data", work / "checkpoints", image_size=IMAGE_SIZE, seed=0)
    train_photo_model(work / "data", work / "checkpoints/yours", image_size=IMAGE_SIZE, seed=1)
    shutil.move(scenario["synsets"], work / "data/synsets.txt")  # the README's layout
    shutil.move(scenario["val_labels"], work / "data/val_labels.csv")
    (work / "my.yaml").write_text(yaml.safe_dump(override(model), sort_keys=False))
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    out = {"work": work, "scenario": scenario, "model": model, "env": env}

    out["validate"] = run(work, VALIDATE, env)
    out["dry_run"] = run(work, DRY_RUN, env)
    out["first_stop"] = run(work, SALIENT, env, check=False)
    # published layout: rank-1 features of the cued class are background (3 of 5 workers); one
    # exported pair of another class is left unanswered; a pair never exported is answered
    cued = {c["wnid"] for c in scenario["cued"]}
    unanswered = {}

    def skip(row):
        if row["wordnet_id"] not in cued and not unanswered:
            unanswered[(row["class_index"], row["feature_index"])] = True
        return (row["class_index"], row["feature_index"]) in unanswered

    extra = [[f"W{k}", "n00000004", "3", "99999", "1", "background", "3.0", "not exported"] for k in range(5)]
    out["salient_rows"] = answer(
        work / "data/answers/salient.csv",
        work / "results/salient/tasks/manifest.csv",
        lambda row: row["wordnet_id"] in cued and row["feature_rank"] == "1",
        skip,
        extra,
    )
    out["unanswered"] = list(unanswered)
    out["import"] = run(work, IMPORT, env)
    out["second_stop"] = run(work, RUN_ALL, env, check=False)
    out["npca_rows"] = answer(
        work / "data/answers/npca.csv",
        work / "results/npca/tasks/manifest.csv",
        lambda row: row["wordnet_id"] in cued and row["feature_rank"] == "1",
    )
    out["final"] = run(work, RUN_ALL, env)
    return out


def test_readme_shows_these_commands():
    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        assert command in readme, command


def test_dry_run_plans_no_benchmark_job(folders_run):
    assert "is a valid spurlab config" in folders_run["validate"].stdout
    plan = folders_run["dry_run"].stdout
    jobs = [line.split()[0] for line in plan.splitlines() if line.strip() and line.split()[-1].isdigit()
            and len(line.split()) == 2]  # fmt: skip
    assert {"index_folder", "import_checkpoint", "features", "importance", "npca_bases", "spurious_gaps"} <= set(jobs)
    assert not [j for j in jobs if j.startswith(BENCHMARK_RULES)], jobs


def test_round_trip_stops_naming_the_answers_files(folders_run):
    work = folders_run["work"]
    first = folders_run["first_stop"]
    assert first.returncode != 0
    text = first.stdout + first.stderr
    assert "human answers needed" in text and "data/answers/salient.csv" in text
    assert "results/salient/tasks/index.html" in text
    assert not (work / "data/answers/salient.csv").exists() or folders_run["salient_rows"]
    second = folders_run["second_stop"]
    assert second.returncode != 0
    text = second.stdout + second.stderr
    assert "human answers needed" in text and "data/answers/npca.csv" in text and "results/npca/tasks" in text


def test_import_annotations_reports_coverage(folders_run):
    work = folders_run["work"]
    summary = json.loads((work / "results/salient/answers.json").read_text())
    n_exported = len(folders_run["salient_rows"])
    cov = summary["coverage"]
    assert cov["answered_and_exported"] == n_exported - 1
    assert cov["exported_unanswered"] == 1 and cov["answered_not_exported"] == 1
    assert cov["answered_not_exported_pairs"] == ["3/99999"]
    assert cov["exported_unanswered_pairs"] == ["/".join(p) for p in folders_run["unanswered"]]
    assert summary["pairs"] == n_exported and summary["unannotated"] == 1
    assert summary["spurious"] == len(folders_run["scenario"]["cued"])


def test_salient_summary_on_folders(folders_run):
    work = folders_run["work"]
    s = json.loads((work / "results/salient/summary.json").read_text())
    assert s["annotation_source"] == "human"
    assert s["n_spurious"] == len(folders_run["scenario"]["cued"])
    assert s["coverage"]["exported_unanswered"] == 1 and s["n_unannotated"] == 1
    assert s["drake"] and s["drake_classes"] == "classes with both"
    assert s["auto_annotator_precision"] is None and s["planted_cues_recovered"] is None
    assert s["not_computed"]
    assert set(s["noise"]) == {"discovery", "yours"}


def test_spuriosity_summary_on_folders(folders_run):
    work = folders_run["work"]
    s = json.loads((work / "results/spuriosity/summary.json").read_text())
    assert s["class_roles"] is None and s["spuriosity_auc"] is None and "class_roles" in s["not_computed"]
    assert "control" not in json.dumps([m.get("class_gap") for m in s["models"].values()])
    cued = [c["name"] for c in folders_run["scenario"]["cued"]]
    assert s["ranked_classes"] == cued  # the class whose rank-1 feature people called background
    assert set(s["tuning"]) == {"discovery", "yours"}
    for meta in ("discovery", "yours"):
        m = json.loads((work / f"results/models/{meta}/meta.json").read_text())
        assert m["imported"]["layout"] == ("madry" if meta == "discovery" else "state_dict")


def test_npca_summary_on_folders(folders_run):
    work = folders_run["work"]
    s = json.loads((work / "results/npca/summary.json").read_text())
    cued = len(folders_run["scenario"]["cued"])
    assert s["n_components_annotated"] == len(folders_run["npca_rows"])
    assert s["n_components_spurious"] == cued
    assert set(s["models"]) == {"discovery", "yours"}
    assert s["not_computed"]
    assert s["cue_only_negatives"] == "folder_labels"
    # the tag in the cue-only folder fools both models (a model the cue does not fool scores 1)
    for m in s["models"].values():
        assert m["spurious_auc_before"] < 0.95 and m["acc_before"] > 0.5
    assert s["models"]["yours"]["transferred"] and s["transfer_invariant_max_abs_err"] <= 1e-5


def test_report_and_site(folders_run):
    work = folders_run["work"]
    assert (work / "results/summary.md").stat().st_size > 200
    assert (work / "results/site/index.html").is_file()
    assert (work / "results/tables/metrics.parquet").is_file()
