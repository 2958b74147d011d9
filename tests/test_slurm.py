"""SLURM for real (issue #10): a one-node cluster on localhost runs part of the tiny workflow through
`--workflow-profile workflow/profiles/slurm`; its outputs equal a local run byte for byte, and a
job killed with `scancel` mid-run is resubmitted by the profile's `retries:` so the run completes.

Needs root (it starts slurmctld, slurmd and munged); installs `slurm-wlm` and `munge` with apt-get
when missing. Skipped, with the reason, when not root, when apt-get is unavailable and SLURM is not
installed, or when a real cluster's /etc/slurm/slurm.conf is present (left untouched).
"""

import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

SCRIPTS = ROOT / "tests" / "slurm"
# A small slice of the tiny workflow: three image sets, a contact sheet, one trained model (the job
# cancelled below: ~10-40 s, long enough to catch while running) and its features on the test set.
TARGETS = ["results/features/erm_tiny/test.h5", "results/datasets/test.png"]
# Deterministic outputs (meta.json and per-epoch checkpoints record wall times, so they differ).
COMPARED = ["results/datasets/train.h5", "results/datasets/val.h5", "results/datasets/test.h5",
            "results/datasets/test.png", "results/models/erm_tiny/model.safetensors",
            "results/features/erm_tiny/test.h5"]  # fmt: skip


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("starting a SLURM cluster needs root")
    have_slurm = all(shutil.which(x) for x in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have_slurm and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is unavailable to install it")
    state = tmp_path_factory.mktemp("slurm_state")
    r = subprocess.run(["bash", str(SCRIPTS / "start_cluster.sh"), str(state)], capture_output=True, text=True,
                       timeout=1200)  # fmt: skip
    if r.returncode in (3, 4):  # not root / no apt-get, or a real cluster's config is present
        pytest.skip(r.stderr.strip().splitlines()[-1])
    try:
        assert r.returncode == 0, f"cluster did not start:\n{r.stdout}\n{r.stderr}"
        yield state
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(state)], capture_output=True, timeout=120)


def _snakemake(workdir, *args):
    return ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(ROOT / "config" / "tiny.yaml"), *args, *TARGETS]  # fmt: skip


def _running_train_job(deadline: float) -> str:
    """The SLURM id of the `train` job once it has been running for 2 s (the plugin puts the rule
    name in the job comment)."""
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "--states=RUNNING", "-o", "%i|%k"], capture_output=True,
                             text=True).stdout  # fmt: skip
        for line in out.splitlines():
            jobid, comment = line.split("|", 1)
            if comment.startswith("rule_train"):
                time.sleep(2)
                return jobid
        time.sleep(0.3)
    raise AssertionError("the train job never ran on the SLURM cluster")


def test_slurm_run_equals_local_and_retries_a_cancelled_job(cluster, tmp_path, venv_env):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local_log, remote_log = open(tmp_path / "local.log", "w"), open(tmp_path / "slurm.log", "w")
    # The two runs overlap: the SLURM run spends most of its time between status checks.
    p_local = subprocess.Popen(
        _snakemake(local, "--cores", "2", "--workflow-profile", str(ROOT / "workflow/profiles/default")),
        stdout=local_log, stderr=subprocess.STDOUT, env=venv_env,
    )  # fmt: skip
    # 2 s before the first status check instead of 40: the jobs here take seconds
    p_slurm = subprocess.Popen(
        _snakemake(remote, "--workflow-profile", str(ROOT / "workflow/profiles/slurm"),
                   "--slurm-init-seconds-before-status-checks", "2"),
        stdout=remote_log, stderr=subprocess.STDOUT, env=venv_env,
    )  # fmt: skip
    try:
        cancelled = _running_train_job(time.time() + 240)
        subprocess.run(["scancel", cancelled], check=True)
        rc_slurm = p_slurm.wait(timeout=400)
        rc_local = p_local.wait(timeout=400)
    finally:
        for p in (p_slurm, p_local):
            if p.poll() is None:
                p.kill()
        local_log.close()
        remote_log.close()
    log = (tmp_path / "slurm.log").read_text()
    assert rc_local == 0, (tmp_path / "local.log").read_text()[-3000:]
    assert rc_slurm == 0, log[-3000:]

    # every job went through sbatch; the cancelled one failed as CANCELLED and was resubmitted
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+?)/", log)
    rules = [r for _, r in submitted]
    assert sorted(set(rules)) == ["contact_sheet", "features", "image_set", "train"]
    assert rules.count("train") == 2 and rules.count("image_set") == 3
    assert (cancelled, "train") in submitted
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in log
    assert "Trying to restart job" in log
    state = subprocess.run(["squeue", "-h", "--states=all", "-j", cancelled, "-o", "%T"], capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
    assert state == "CANCELLED"
    assert "100%) done" in log

    # same bytes as the local run, including the model trained after the cancelled attempt
    for rel in COMPARED:
        assert _sha(remote / rel) == _sha(local / rel), f"{rel}: SLURM and local runs differ"
    assert (remote / "logs/train/erm_tiny.log").exists() and (remote / "benchmarks/train/erm_tiny.tsv").exists()
    r = subprocess.run(_snakemake(remote, "-n", "--workflow-profile", str(ROOT / "workflow/profiles/slurm")),
                       capture_output=True, text=True, env=venv_env)  # fmt: skip
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr
