"""Commands that do not compute with torch do not import it (docs/performance.md#per-job-fixed-cost):
`import torch` costs about 1.5 s of every job that does, timm as much again."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import yaml

from tests.conftest import ROOT, load_yaml, salient_stages

HEAVY = ("torch", "timm", "captum")

SCRIPT = """
import json, sys
from spurlab.cli import main

out = sys.argv[1]
assert main(["make-set", "--config", out + "/c.yaml", "--set", "cue_only", "--out", out + "/cue_only.h5", "--quiet"]) == 0
assert main(["contact-sheet", out + "/cue_only.h5", "--out", out + "/cue_only.png", "-n", "4"]) == 0
after_commands = sorted(m for m in {HEAVY} if m in sys.modules)
# the modules the summaries and spuriosity commands run, and the feature-cache reader
import spurlab.data.feature_cache, spurlab.measure.spuriosity, spurlab.measure.spuriosity_summary
import spurlab.models_summary, spurlab.report.tables
print("LOADED " + json.dumps([after_commands, sorted(m for m in {HEAVY} if m in sys.modules)]))
""".replace("{HEAVY}", repr(HEAVY))


def test_light_commands_do_not_import_torch(tmp_path, venv_env):
    cfg = load_yaml("tiny.yaml")
    cfg["datasets"]["n_images"]["cue_only"] = 8
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(venv_env, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "cue_only.png").stat().st_size > 0
    assert json.loads(r.stdout.split("LOADED ", 1)[1]) == [[], []]


SALIENT_SCRIPT = """
import json, sys
from spurlab.cli import main

d, out = sys.argv[1], sys.argv[2]
for argv in (
    ["annotation-tasks", "--subsets", d + "/sub.h5", "--imageset", d + "/test.h5", "--out-dir", out + "/tasks"],
    ["annotate", "--config", d + "/c.yaml", "--subsets", d + "/sub.h5", "--out", out + "/ann.parquet"],
    ["salient-masks", "--subsets", d + "/sub.h5", "--annotations", d + "/ann.parquet", "--out", out + "/masks.h5"],
    ["lightweight-summary", "--subsets", d + "/sub.h5", "--annotations", d + "/ann.parquet", "--model-dir",
     d + "/model", "--imageset", d + "/test.h5", "--features", d + "/f.h5", "--out", out + "/lw.json"],
):
    assert main(argv) == 0, argv
after_commands = sorted(m for m in {HEAVY} if m in sys.modules)
# the handlers' modules of npca-tasks, npca-annotate, npca-summary, salient-summary and the report
import spurlab.discover.heatmap, spurlab.discover.npca_annotate, spurlab.discover.subsets_file
import spurlab.measure.npca_summary, spurlab.measure.salient_summary, spurlab.report.figures, spurlab.report.site
print("LOADED " + json.dumps([after_commands, sorted(m for m in {HEAVY} if m in sys.modules)]))
""".replace("{HEAVY}", repr(HEAVY))


def test_subset_readers_do_not_import_torch(tmp_path, venv_env):
    """annotation-tasks, annotate, salient-masks and lightweight-summary read the subsets file
    (spurlab.discover.subsets_file), npca-tasks and npca-annotate the components' tables
    (spurlab.discover.npca_annotate): none computes with torch."""
    d = tmp_path / "in"
    d.mkdir()
    cfg, _ = salient_stages(d)
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    meta = json.loads((d / "model" / "meta.json").read_text())  # as fit-head leaves it (lightweight-summary)
    (d / "model" / "meta.json").write_text(json.dumps(dict(meta, metrics={"train_acc": 0.5, "test_acc": 0.4})))
    env = dict(venv_env, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([sys.executable, "-c", SALIENT_SCRIPT, str(d), str(tmp_path)], capture_output=True, text=True,
                       env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "tasks" / "index.html").is_file() and (tmp_path / "masks.h5").is_file()
    assert json.loads(r.stdout.split("LOADED ", 1)[1]) == [[], []]
    # the head's accuracy interval: its test predictions in the feature cache, resampled (seed 0 without --config)
    from spurlab.data.feature_cache import open_features
    from spurlab.stats import mean_ci

    with open_features(d / "f.h5") as fc:
        labels, logits = fc["labels"], fc["logits"]
    correct = (logits[labels >= 0].argmax(1) == labels[labels >= 0]).astype(float)
    assert json.loads((tmp_path / "lw.json").read_text())["head_test_acc_ci"] == mean_ci(correct, 0, "head-test-acc")
    # the same bytes as the library's own run (salient_stages wrote masks.h5 through spurlab.discover.subsets)
    with h5py.File(d / "masks.h5") as a, h5py.File(tmp_path / "masks.h5") as b:
        for name in ("spurious/row", "spurious/mask", "core/row", "core/mask"):
            np.testing.assert_array_equal(a[name][()], b[name][()])
