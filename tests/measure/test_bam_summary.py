"""The `bam` target's summary on the tiny stage (tests/measure/conftest.py: seeded untrained models,
every table): its keys and ranges, and its refusal of tables made from other checkpoints."""

import json

import numpy as np
import pandas as pd
import pytest

from spurlab.config import kseries_codes
from spurlab.errors import SpurlabError
from spurlab.io.tables import write_table
from spurlab.measure.bam_summary import run_bam_summary


@pytest.mark.slow
def test_summary_holds_every_method_metric_and_the_verification(bam_stage, bam_verification, bam_parts, bam_tcav):
    cfg, d, sets, dirs = bam_stage
    s = run_bam_summary(cfg, d / "verification.parquet", bam_parts["contrast"],
                        {c: bam_parts[c] for c in kseries_codes(cfg)}, bam_parts["iir"], d / "tcav.parquet",
                        d / "summary.json", d / "mcs.png")  # fmt: skip
    on_disk = json.loads((d / "summary.json").read_text())
    for m in cfg["bam"]["benchmark"]["methods"]:
        for key in ("mcs", "mcs_random_baseline", "rho_k_series", "idr", "iir"):
            assert key in on_disk["methods"][m]
        for key in ("idr", "iir"):
            v = on_disk["methods"][m][key]
            assert v is None or 0 <= v <= 1
    assert "tcav_mcs" in s and set(s["verification"]) == {"f_o", "f_s"}
    assert set(s["verification"]["f_o"]) == {"os", "0s", "og"}
    assert set(s["k_series_accuracy_drop"]) == {"0.3", "1"}
    assert (d / "mcs.png").stat().st_size > 5000


def test_summary_refuses_tables_of_other_checkpoints(tiny_cfg, tmp_path):
    cfg = tiny_cfg
    write_table(pd.DataFrame({"model": ["f_o"], "set": ["x"], "rows": ["all"], "k": [np.nan], "accuracy": [1.0], "n": [1]}),
                tmp_path / "v.parquet", {"models": {"f_o": "1" * 64}})  # fmt: skip
    write_table(pd.DataFrame({"model": ["f_o"]}), tmp_path / "c.parquet", {"models": {"f_o": "2" * 64}})
    with pytest.raises(SpurlabError, match="made from model f_o"):
        run_bam_summary(cfg, tmp_path / "v.parquet", tmp_path / "c.parquet", {c: tmp_path / "c.parquet" for c in kseries_codes(cfg)},
                        tmp_path / "c.parquet", tmp_path / "c.parquet", tmp_path / "s.json", tmp_path / "f.png")  # fmt: skip
    assert not (tmp_path / "s.json").exists()


def _tcav_table(kept: dict) -> pd.DataFrame:
    """TCAV rows of f_o and f_s: two layers, five runs each; `kept`: model -> the layers its combined score keeps."""
    rng = np.random.default_rng(0)
    rows = []
    for m, level in (("f_o", 0.8), ("f_s", 0.4)):
        for layer in ("l1", "l2"):
            runs, rand = (level + rng.normal(0, 0.05, 5)).tolist(), rng.uniform(0.4, 0.6, 5).tolist()
            rows.append({"model": m, "layer": layer, "score": np.mean(runs), "random_score": np.mean(rand),
                         "concept_scores": json.dumps(runs), "random_scores": json.dumps(rand)})  # fmt: skip
        sel = [r for r in rows if r["model"] == m and r["layer"] in kept[m]]
        rows.append({"model": m, "layer": "combined", "score": np.mean([r["score"] for r in sel]) if sel else 0.0,
                     "random_score": np.mean([r["random_score"] for r in rows if r["model"] == m]),
                     "concept_scores": json.dumps(kept[m]), "random_scores": "[]"})  # fmt: skip
    return pd.DataFrame(rows)


def test_tcav_mcs_interval_resamples_the_runs_with_their_layers():
    from spurlab.measure.bam_summary import tcav_mcs_ci, tcav_runs
    from spurlab.stats import bootstrap_ci

    tc = _tcav_table({"f_o": ["l1", "l2"], "f_s": ["l2"]})
    comb = tc[tc["layer"] == "combined"].set_index("model")
    mcs = comb.loc["f_o", "score"] - comb.loc["f_s", "score"]
    ci = tcav_mcs_ci(tc, "concept_scores", True, 0, "k")
    assert ci[0] < mcs < ci[1] and tcav_runs(tc, "f_o", "concept_scores", True).shape == (5, 2)
    o, s = tcav_runs(tc, "f_o", "concept_scores", True), tcav_runs(tc, "f_s", "concept_scores", True)
    assert ci == bootstrap_ci([o, s], lambda a, b: a.mean() - b.mean(), 0, "k")
    base = comb.loc["f_o", "random_score"] - comb.loc["f_s", "random_score"]
    low, high = tcav_mcs_ci(tc, "random_scores", False, 0, "r")
    assert low <= base <= high
    # no layer kept for f_s: its score is 0 on every resample
    none = _tcav_table({"f_o": ["l1"], "f_s": []})
    only_o = tcav_runs(none, "f_o", "concept_scores", True)
    assert tcav_mcs_ci(none, "concept_scores", True, 0, "k") == bootstrap_ci([only_o], np.mean, 0, "k")
    assert tcav_runs(none, "f_s", "concept_scores", True).shape == (5, 0)


def test_rho_interval_resamples_the_k_values():
    from spurlab.measure.bam_metrics import pearson
    from spurlab.measure.bam_summary import rho_ci

    x, y = [0.1, 0.3, 0.2, 0.5, 0.6, 0.8], [0.05, 0.2, 0.25, 0.4, 0.7, 0.75]
    low, high = rho_ci(x, y, 0, "k")
    assert -1 <= low <= pearson(x, y) <= high <= 1 and rho_ci(x, y, 0, "k") == [low, high]
    assert rho_ci([0.1, None, 0.2], [0.1, 0.2, 0.3], 0, "k") is None
