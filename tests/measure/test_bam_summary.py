"""The `bam` target's summary on the tiny stage (tests/measure/conftest.py: seeded untrained models,
every table): its keys and ranges, and its refusal of tables made from other checkpoints."""

import json

import numpy as np
import pandas as pd
import pytest

from spurlab.config import kseries_codes
from spurlab.errors import SpurlabError
from spurlab.io.tables import write_table
from spurlab.measure.bam_metrics import idr
from spurlab.measure.bam_summary import idr_mean_ci, idr_pairs, idr_random_mean, run_bam_summary


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
    base = [e["idr_random_baseline"] for e in s["methods"].values() if e["idr_random_baseline"] is not None]
    assert on_disk["idr_random_baseline_mean"] == sum(base) / len(base)
    low, high = on_disk["idr_random_baseline_mean_ci"]
    assert low <= on_disk["idr_random_baseline_mean"] <= high
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


def _contrast(rng, n=40, methods=("gradcam", "gradient"), region="random_outside"):
    """A contrast table of f_s on X_os and X_0s: g_c per image, method and set; f_s wrong on X_0s
    for the last 5 images."""
    rows = []
    for m in methods:
        for set_name in ("bam_os_test", "bam_0s_test"):
            for r in range(n):
                rows.append({"model": "f_s", "set": set_name, "method": m, "normaliser": "abs", "region": region,
                             "row": r, "g": float(rng.random()), "correct": r < n - 5})  # fmt: skip
    return pd.DataFrame(rows)


def test_idr_pairs_keep_the_images_f_s_classifies_without_the_object():
    con = _contrast(np.random.default_rng(0))
    p = idr_pairs(con, ("gradcam", "abs"), "random_outside")
    assert list(p.index) == list(range(35)) and list(p.columns) == ["g_cf", "g_no"]
    g = con[(con["method"] == "gradcam") & (con["set"] == "bam_os_test")]["g"].to_numpy()
    np.testing.assert_array_equal(p["g_cf"].to_numpy(), g[:35])


def test_the_mean_random_idr_over_methods_has_an_interval_over_images():
    """One resample of the images serves every method: two methods with the same pairs give the
    interval of one; the mean's interval holds the mean, is zero-width when every image agrees,
    and is seeded."""
    rng = np.random.default_rng(0)
    con = _contrast(rng)
    pairs = {m: idr_pairs(con, (m, "abs"), "random_outside") for m in ("gradcam", "gradient")}
    per_method = {m: {"idr_random_baseline": round(idr(p["g_cf"], p["g_no"]), 4)} for m, p in pairs.items()}
    out = idr_random_mean(per_method, pairs, seed=2)
    mean, (low, high) = out["idr_random_baseline_mean"], out["idr_random_baseline_mean_ci"]
    assert mean == sum(e["idr_random_baseline"] for e in per_method.values()) / 2
    assert low <= mean <= high and low < high
    assert idr_random_mean(per_method, pairs, seed=2) == out
    same = {"a": pairs["gradcam"], "b": pairs["gradcam"]}
    assert idr_mean_ci(same, 2, "k") == idr_mean_ci({"a": pairs["gradcam"]}, 2, "k")
    # an image a method lacks counts for the others only
    short = {"a": pairs["gradcam"], "b": pairs["gradient"].iloc[:20]}
    low, high = idr_mean_ci(short, 2, "k")
    assert low <= (idr(*short["a"].to_numpy().T) + idr(*short["b"].to_numpy().T)) / 2 <= high
    # every image attributes the region less with the object: IDR 1 in every resample
    less = {m: p.assign(g_no=p["g_cf"] + 1) for m, p in pairs.items()}
    assert idr_mean_ci(less, 2, "k") == [1.0, 1.0]
    # a method without IDR is left out of the mean; none at all: no number, no interval
    per_method["gradient"]["idr_random_baseline"] = None
    assert (
        idr_random_mean(per_method, pairs, seed=2)["idr_random_baseline_mean"]
        == per_method["gradcam"]["idr_random_baseline"]
    )
    assert idr_random_mean({}, {}, seed=2) == {"idr_random_baseline_mean": None, "idr_random_baseline_mean_ci": None}
