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
    assert set(s["spurious_score"]) == set(posthoc_models(cfg)) and set(s["spurious_score"]["normal"]) == set(signals)
    assert set(s["conditions"].values()) <= {"normal", "spurious", "neither"}
    for sig in signals:
        for m in cfg["posthoc"]["methods"]:
            for k in ("kssd", "ccm", "fam", "famgt"):
                assert set(s["attribution"][sig][m][k]) == {"mean", "sem", "n"}
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
