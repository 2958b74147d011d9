"""The `posthoc` target's summary and Tables 1-3 on the tiny stage (tests/measure/conftest.py: models
with per-epoch checkpoints, scores, attributions, TCAV, TracIn, the study kit), and its refusal of
tables made from another checkpoint."""

import pytest

from spurlab.config import contamination_signals, posthoc_models
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.measure.posthoc_summary import run_summary
from spurlab.measure.signal_flip_score import run_scores


@pytest.fixture(scope="module")
def tables(posthoc_stage, posthoc_scores, posthoc_attributions, posthoc_tcav, posthoc_influence, posthoc_study):
    return posthoc_stage


@pytest.mark.slow
def test_summary_keys_and_tables(tables, posthoc_attributions):
    cfg, d, sets, dirs = tables
    s = run_summary(cfg, d / "scores.parquet", posthoc_attributions, d / "tcav.parquet", d / "influence.parquet",
                    d / "study" / "simulated_analysis.json", d / "summary.json", d / "tables")  # fmt: skip
    signals = contamination_signals(cfg)
    assert set(s["spurious_score"]) == set(posthoc_models(cfg)) == set(s["spurious_score_max"])
    assert set(s["spurious_score"]["normal"]) == set(signals) | {f"{sig}_ci" for sig in signals}
    for m, per in s["spurious_score"].items():  # intervals over the test images (docs/methods.md#bootstrap-intervals)
        for sig in signals:
            assert per[f"{sig}_ci"] is None or per[f"{sig}_ci"][0] <= per[sig] <= per[f"{sig}_ci"][1]
        top = s["spurious_score_max"][m]
        assert top["max"] >= max(per[sig] for sig in signals) and top["max_ci"][0] <= top["max"] <= top["max_ci"][1]
    assert set(s["conditions"].values()) <= {"normal", "spurious", "neither"}
    for sig in signals:
        for m in cfg["posthoc"]["methods"]:
            for k in ("kssd", "ccm", "fam", "famgt"):
                e = s["attribution"][sig][m][k]
                assert set(e) == {"mean", "sem", "n", "mean_ci"} and e["mean_ci"][0] <= e["mean"] <= e["mean_ci"][1]
        for key in ("tcav_ks", "icm_ks"):
            assert set(s[key][sig]) == {"kssd", "ccm", "fam"}
            assert isinstance(s[key][sig]["kssd"]["reject"], bool) and 0 <= s[key][sig]["kssd"]["p_value"] <= 1
    t1 = read_table(d / "tables" / "table1_attributions.parquet")
    assert list(t1.metric) == ["K-SSD", "K-SSD (SEM)", "CCM", "CCM (SEM)", "FAM", "FAM (SEM)", "FAM-GT", "FAM-GT (SEM)"]
    assert list(read_table(d / "tables" / "table2_tcav_ks.parquet").metric) == ["K-SSD", "CCM", "FAM"]


@pytest.mark.slow
def test_summary_refuses_tables_of_other_checkpoints(tables, posthoc_attributions, tmp_path):
    cfg, d, sets, dirs = tables
    other = dict(dirs, normal=dirs["spurious_tag"])
    run_scores(cfg, other, sets, tmp_path / "scores.parquet")
    with pytest.raises(SpurlabError, match="another checkpoint of model normal"):
        run_summary(cfg, tmp_path / "scores.parquet", posthoc_attributions, d / "tcav.parquet", d / "influence.parquet",
                    d / "study" / "simulated_analysis.json", tmp_path / "s.json", tmp_path / "t")  # fmt: skip
