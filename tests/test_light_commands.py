"""Commands that do not compute with torch do not import it (docs/performance.md#per-job-fixed-cost):
`import torch` costs about 1.5 s of every job that does, timm as much again."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.conftest import ROOT, load_yaml

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
