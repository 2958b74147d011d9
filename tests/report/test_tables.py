"""Aggregation of the stage summaries into the tidy metrics table (issue #9); results/summary.md:
test_summary_md.py."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.report.tables import TIDY_COLUMNS, Vocabulary, aggregate, detail_rows, flatten_summary

VOCAB = Vocabulary(models=["erm_a", "robust_b"], classes=["disk", "square"], methods=["gradcam", "gradient"])


def row(df, **where):
    sel = df
    for k, v in where.items():
        sel = sel[sel[k].isna()] if v is None else sel[(sel[k] == v).fillna(False)]
    assert len(sel) == 1, (where, sel)
    return sel.iloc[0]


def test_flatten_fills_id_columns_and_metric_path():
    s = {"noise": {"erm_a": {"0.25": {"core_acc": 0.5, "spurious_acc": 0.75, "n_classes": 2}}},
         "planted_cue_recovery": {"disk/water_bg": True, "square/feeder": False},
         "methods": {"gradcam": {"mcs": 0.1, "mcs_sd": 0.02, "mcs_n": 4, "idr": 0.9}},
         "models": {"robust_b": {"class_gap": {"disk": 0.3}}},
         "inputs": {"x_sha256": "ab"}, "name": "text", "headline": 3, "n_pairs": 50}  # fmt: skip
    df = flatten_summary("st", s, VOCAB, source="st/summary.json")
    assert list(df.columns) == TIDY_COLUMNS
    r = row(df, model="erm_a", setting="0.25", metric="noise/core_acc")
    assert r["value"] == 0.5 and r["n"] == 2 and pd.isna(r["class_name"])
    r = row(df, class_name="disk", feature="water_bg")
    assert r["value"] == 1.0 and r["metric"] == "planted_cue_recovery"
    r = row(df, method="gradcam", metric="methods/mcs")
    assert r["n"] == 4 and math.isclose(r["sem"], 0.02 / 2)  # sd / sqrt(n)
    assert row(df, model="robust_b", class_name="disk")["metric"] == "models/class_gap"
    assert not (df["metric"].str.contains("sha256") | df["metric"].str.contains("mcs_sd")).any()
    assert row(df, metric="headline")["value"] == 3 and pd.isna(
        row(df, metric="headline")["n"]
    )  # root counts stay rows
    assert (df["stage"] == "st").all() and (df["source"] == "st/summary.json").all()


def test_list_of_numbers_becomes_mean_with_n_and_sem_and_records_keep_ids():
    s = {"gap_after_trials": [0.1, 0.2, 0.3],
         "per_class": [{"class": 0, "model": "erm_a", "negatives": "cue_only", "auc": 0.8}]}  # fmt: skip
    df = flatten_summary("st", s, VOCAB)
    r = row(df, metric="gap_after_trials/mean")
    assert (
        math.isclose(r["value"], 0.2)
        and r["n"] == 3
        and math.isclose(r["sem"], np.std([0.1, 0.2, 0.3], ddof=1) / 3**0.5)
    )
    r = row(df, metric="per_class/auc")
    assert (r["model"], r["class_name"], r["setting"], r["value"]) == ("erm_a", "0", "cue_only", 0.8)


def test_detail_noise_rows_keep_n_and_sem_and_class_means(tmp_path):
    t = pd.DataFrame({"model": "erm_a", "class_index": [0, 0, 1, 1], "class_name": ["disk", "disk", "square", "square"],
                      "feature_index": [-1, 5, -1, 6], "label": "x", "measure": "core_acc", "sigma": 0.25,
                      "acc": [0.4, 0.9, 0.8, 0.7], "sem": [0.1, 0.05, 0.1, 0.1], "n": [20, 20, 10, 10]})  # fmt: skip
    t.to_parquet(tmp_path / "noise.parquet")
    df = detail_rows("noise", tmp_path / "noise.parquet")
    r = row(df, model="erm_a", class_name="disk", feature="5")
    assert (r["value"], r["n"], r["sem"], r["method"], r["setting"]) == (0.9, 20, 0.05, "core_acc", "0.25")
    m = row(df, class_name=None, metric="acc")  # mean over the classes' rows (feature -1)
    assert math.isclose(m["value"], 0.6) and m["n"] == 2 and math.isclose(m["sem"], np.std([0.4, 0.8], ddof=1) / 2**0.5)


def test_a_new_stage_is_one_more_summary(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"x": 1.0}))
    (tmp_path / "posthoc.json").write_text(json.dumps({"erm_a": {"detect": 0.5}, "agreement": [0.2, 0.4]}))
    one = aggregate({"a": tmp_path / "a.json"}, [], VOCAB)
    two = aggregate({"a": tmp_path / "a.json", "posthoc": tmp_path / "posthoc.json"}, [], VOCAB)
    assert len(two) == len(one) + 2 and set(two["stage"]) == {"a", "posthoc"}
    assert row(two, stage="posthoc", model="erm_a")["value"] == 0.5
    with pytest.raises(SpurlabError, match="missing"):
        aggregate({"b": tmp_path / "nope.json"}, [], VOCAB)


def test_estimate_records_and_nested_methods_fold_into_one_row():
    vocab = Vocabulary(methods=["gradient", "blur"])
    s = {"attribution": {"blur": {"gradient": {"ccm": {"mean": 0.2, "n": 8, "sem": 0.01}}}},
         "other": {"mean": 0.5, "n": 4, "sd": 0.2}}  # fmt: skip
    df = flatten_summary("posthoc", s, vocab)
    assert len(df) == 2
    r = row(df, metric="attribution/ccm")
    assert (r["method"], r["setting"], r["value"], r["n"], r["sem"]) == ("gradient", "blur", 0.2, 8, 0.01)
    assert math.isclose(row(df, metric="other")["sem"], 0.1)  # sd / sqrt(n)


def test_a_sibling_ci_gives_ci_low_and_ci_high_and_no_row_of_its_own():
    s = {"spuriosity_auc_mean": 0.8, "spuriosity_auc_mean_ci": [0.7, 0.9], "k": 5,
         "methods": {"gradcam": {"mcs": 0.1, "mcs_ci": [0.05, 0.2], "idr": 0.9}},
         "attribution": {"kssd": {"mean": 0.4, "sem": 0.1, "n": 9, "mean_ci": [0.2, 0.6]}}}  # fmt: skip
    df = flatten_summary("st", s, VOCAB)
    assert list(df.columns)[-2:] == ["ci_low", "ci_high"]
    r = row(df, metric="spuriosity_auc_mean")
    assert (r["value"], r["ci_low"], r["ci_high"]) == (0.8, 0.7, 0.9)
    r = row(df, method="gradcam", metric="methods/mcs")
    assert (r["ci_low"], r["ci_high"]) == (0.05, 0.2)
    r = row(df, metric="attribution/kssd")
    assert (r["value"], r["n"], r["ci_low"], r["ci_high"]) == (0.4, 9, 0.2, 0.6)
    # no interval: NaN; and the interval lists are not metrics (no `*_ci/mean` rows)
    assert row(df, metric="k")["ci_low"] != row(df, metric="k")["ci_low"]
    assert pd.isna(row(df, method="gradcam", metric="methods/idr")["ci_high"])
    assert not df["metric"].str.contains("_ci").any()


def test_a_per_kind_number_takes_its_intervals_from_a_per_kind_sibling():
    s = {"planted_cues_recovered": {"npca": 0.8, "neurons_top5": 0.6, "neurons_top10": None},
         "planted_cues_recovered_ci": {"npca": [0.6, 1.0], "neurons_top5": None, "neurons_top10": None}}  # fmt: skip
    df = flatten_summary("npca", s, VOCAB)
    r = row(df, metric="planted_cues_recovered/npca")
    assert (r["value"], r["ci_low"], r["ci_high"]) == (0.8, 0.6, 1.0)
    assert pd.isna(row(df, metric="planted_cues_recovered/neurons_top5")["ci_low"])
    assert len(df) == 2 and not df["metric"].str.contains("_ci").any()


def test_a_mapping_of_intervals_beside_a_mapping_gives_each_key_its_interval():
    s = {"models": {"robust_b": {"collision_class_gap": {"disk": 0.3, "square": -0.2},
                                 "collision_class_gap_ci": {"disk": [0.1, 0.5], "square": None}}}}  # fmt: skip
    df = flatten_summary("st", s, VOCAB)
    r = row(df, model="robust_b", class_name="disk")
    assert (r["value"], r["ci_low"], r["ci_high"]) == (0.3, 0.1, 0.5) and r["metric"] == "models/collision_class_gap"
    assert pd.isna(row(df, class_name="square")["ci_low"]) and len(df) == 2
