"""The posthoc stage end to end on tiny sets (in process, no Snakemake): models with per-epoch
checkpoints, scores, attributions, TCAV, TracIn, study kit, summary keys and tables."""

import copy
import json

import pytest

from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.posthoc import model_sets, posthoc_models, signals
from spurlab.posthoc.attribution_similarity import run_signal
from spurlab.posthoc.influence import run_influence
from spurlab.posthoc.models import train_posthoc_model
from spurlab.posthoc.spurious_score import run_scores
from spurlab.posthoc.study import analyse_responses_file, build_study
from spurlab.posthoc.summary import run_summary
from spurlab.posthoc.tcav_tests import run_tcav
from tests.conftest import load_yaml, render_sets


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    d = tmp_path_factory.mktemp("posthoc")
    cfg = copy.deepcopy(load_yaml("tiny.yaml"))
    p = cfg["posthoc"]
    p.update(n_images=4, panel_images=1, train={"epochs": 1})
    p["attribution"].update(smoothgrad_samples=2, ig_steps=2, batch_size=8)
    p["tcav"].update(concept_images=4, random_sets=2, shapes=["disk"], scenes=["grass"], colours=[0])
    p["influence"].update(test_images=4, top_k=3)
    p["study"].update(participants_per_group=3, stimulus_images=1)
    names = sorted(
        {model_sets(cfg, m)[0] for m in posthoc_models(cfg)}
        | {"contam_clean_test"}
        | {f"contam_{s}_test" for s in signals(cfg)}
    )
    sets = render_sets(cfg, names, d)
    dirs = {}
    for m in posthoc_models(cfg):
        tr, va = model_sets(cfg, m)
        train_posthoc_model(cfg, m, sets[tr], sets[va], d / "models" / m, threads=1, progress=False)
        dirs[m] = str(d / "models" / m)
    return cfg, d, sets, dirs


@pytest.mark.slow
def test_stage_writes_tables_kit_and_summary_keys(stage):
    cfg, d, sets, dirs = stage
    for m in dirs:
        assert len(list((d / "models" / m / "checkpoints").glob("epoch_*.pt"))) == 1  # kept for TracIn
    run_scores(cfg, dirs, sets, d / "scores.parquet")
    attr = {}
    for s in signals(cfg):
        run_signal(cfg, s, dirs, sets, d / f"attr_{s}.parquet", d / f"panel_{s}.png", threads=1, progress=False,
                   svg=d / f"panel_{s}.svg")  # fmt: skip
        attr[s] = str(d / f"attr_{s}.parquet")
        assert (d / f"panel_{s}.png").read_bytes()[:4] == b"\x89PNG" and (d / f"panel_{s}.png").stat().st_size > 1000
        assert "<svg" in (d / f"panel_{s}.svg").read_text()
    tc = run_tcav(cfg, dirs, sets, d / "tcav.parquet", d / "cache", threads=1, progress=False)
    assert {"signal:tag", "shape:disk", "scene:grass", "colour:0"} <= set(tc.concept)
    inf = run_influence(cfg, dirs, sets, d / "influence.parquet", threads=1, progress=False)
    assert inf.icm.between(0, 1).all() and len(json.loads(inf.top_rows.iloc[0])) == 3
    build_study(cfg, dirs, sets, d / "tcav.parquet", d / "influence.parquet", d / "study")
    html = (d / "study" / "questionnaire_not_blinded.html").read_text()
    assert (
        "data:image/png;base64" in html and "spurious signal" in html and "http" not in html.replace("http-equiv", "")
    )
    assert "spurious signal" not in (d / "study" / "questionnaire_blinded.html").read_text()
    analyse_responses_file(d / "study" / "simulated_responses.csv", d / "analysis.json")
    s = run_summary(cfg, d / "scores.parquet", attr, d / "tcav.parquet", d / "influence.parquet",
                    d / "study" / "simulated_analysis.json", d / "summary.json", d / "tables")  # fmt: skip
    assert set(s["spurious_score"]) == set(posthoc_models(cfg)) and set(s["spurious_score"]["normal"]) == set(
        signals(cfg)
    )
    assert set(s["conditions"].values()) <= {"normal", "spurious", "neither"}
    for sig in signals(cfg):
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
def test_summary_refuses_tables_of_other_checkpoints(stage, tmp_path):
    cfg, d, sets, dirs = stage
    other = dict(dirs, normal=dirs["spurious_tag"])
    run_scores(cfg, other, sets, tmp_path / "scores.parquet")
    attr = {s: str(d / f"attr_{s}.parquet") for s in signals(cfg)}
    if not (d / "tcav.parquet").exists():
        pytest.skip("needs the first test's tables")
    with pytest.raises(SpurlabError, match="another checkpoint of model normal"):
        run_summary(cfg, tmp_path / "scores.parquet", attr, d / "tcav.parquet", d / "influence.parquet",
                    d / "study" / "simulated_analysis.json", tmp_path / "s.json", tmp_path / "t")  # fmt: skip
