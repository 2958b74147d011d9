"""The neural PCA summary: component counts by label, planted-cue recovery and annotator and
retrieval precision scored where the data has planted truth, null and named in `not_computed`
(one line each) where it has none; SpuFix scores reported either way."""

import numpy as np
import pandas as pd

from spurlab.discover.subsets_file import STAT_COLUMNS
from spurlab.measure.npca_summary import npca_summary


def _npca_inputs(with_truth: bool, labels):
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(labels):
        stats = {c: (float(rng.random()) if with_truth else np.nan) for c in STAT_COLUMNS}
        rows.append({"kind": "component", "class": i // 2, "class_name": f"c{i // 2}", "feature": i % 2,
                     "rank": i % 2 + 1, "label": label, "source": "auto", "switched_off": None, **stats})  # fmt: skip
    pairs = pd.DataFrame(rows)
    retrieval = pd.DataFrame({"class": [0, 0], "has_cue": [np.nan, np.nan] if not with_truth else [1.0, 0.0],
                              "object_absent": [np.nan, np.nan] if not with_truth else [1.0, 1.0]})  # fmt: skip
    models = pd.DataFrame({"model": ["r", "e"], "transferred": [False, True], "acc_before": [0.8, 0.7],
                           "acc_after": [0.79, 0.7], "cue_only_auc_before": [0.6, 0.5], "cue_only_auc_after": [0.7, 0.4],
                           "transfer_invariant_max_abs_err": [1e-9, np.nan]})  # fmt: skip
    classes = pd.DataFrame({"model": ["r"], "negatives": ["cue_only"], "class": [0], "spufix_components": [1],
                            "spurious_auc_before": [0.6], "spurious_auc_after": [0.7], "corrected_pos": [0.5],
                            "correction_pos": [0.2], "corrected_neg": [0.0], "correction_neg": [0.0],
                            "transfer_corr": [1.0]})  # fmt: skip
    harmful = pd.DataFrame(
        {"class": [0], "class_name": ["c0"], "component": [0], "harm_rate": [0.6], "harmful": [True]}
    )
    return pairs, retrieval, models, classes, harmful


def test_npca_summary_on_data_without_planted_truth():
    labels = [
        "spurious",
        "unannotated",
        "unannotated",
        "undecided",
        "core",
        "unannotated",
        "unannotated",
        "unannotated",
    ]
    pairs, retrieval, models, classes, harmful = _npca_inputs(False, labels)
    s = npca_summary(pairs, {"planted_cues": {}}, retrieval, models, classes, harmful)
    assert s["n_components"] == 8 and s["n_components_annotated"] == 2 and s["n_components_spurious"] == 1
    assert s["component_labels"] == {"core": 1, "spurious": 1, "undecided": 1, "unannotated": 5}
    for key in ("planted_cues_recovered", "planted_cue_recovery", "annotator_precision",
                "annotator_precision_presence_only", "retrieval_precision"):  # fmt: skip
        assert s[key] is None and key in s["not_computed"]
    assert s["retrieval_precision_ci"] is None
    assert s["harmfulness"]["harmful_precision"] is None and "harmfulness/harmful_precision" in s["not_computed"]
    assert s["acceptance"]["npca_recovery_at_least_0.9"] is None
    assert all(isinstance(v, str) and v and "\n" not in v for v in s["not_computed"].values())
    # the SpuFix scores need no planted truth: reported as they are
    assert s["models"]["r"]["spurious_auc_before"] == 0.6 and s["models"]["e"]["spurious_auc_after"] == 0.4
    assert s["acceptance"]["spufix_raises_mean_spurious_auc"] == {"r": True, "e": False}
    # every component unannotated: none counted as annotated
    s = npca_summary(_npca_inputs(False, ["unannotated"] * 8)[0], {}, retrieval, models, classes, harmful)
    assert s["n_components"] == 8 and s["n_components_annotated"] == 0 and s["spurious_components"] == {}


def test_npca_summary_with_planted_truth_scores_it():
    labels = ["spurious", "core"] * 4
    pairs, retrieval, models, classes, harmful = _npca_inputs(True, labels)
    s = npca_summary(pairs, {"planted_cues": {"c0": ["tag"]}}, retrieval, models, classes, harmful)
    assert set(s["planted_cues_recovered"]) == {"npca", "neurons_top5", "neurons_top10"}
    assert s["planted_cue_recovery"]["npca"] is not None and s["annotator_precision"]["npca"] is not None
    assert s["retrieval_precision"] == 0.5 and isinstance(s["acceptance"]["npca_recovery_at_least_0.9"], bool)
    assert s["n_components_annotated"] == 8 and s["n_components_spurious"] == 4
    assert s["not_computed"] == {}
    # one hit in two retrieved images: a resample draws 0, 1 or 2 hits (docs/methods.md#bootstrap-intervals)
    assert s["retrieval_precision_ci"] == [0.0, 1.0]
    assert npca_summary(pairs, {"planted_cues": {"c0": ["tag"]}}, retrieval, models, classes, harmful,
                        seed=0)["retrieval_precision_ci"] == s["retrieval_precision_ci"]  # fmt: skip


def test_npca_summary_carries_the_spufix_intervals_of_the_models_table():
    pairs, retrieval, models, classes, harmful = _npca_inputs(True, ["spurious", "core"] * 4)
    models = models.assign(acc_before_ci_low=[0.75, np.nan], acc_before_ci_high=[0.85, np.nan],
                           retrieved_auc_after=[0.9, 0.8], retrieved_auc_after_ci_low=[0.85, 0.7],
                           retrieved_auc_after_ci_high=[0.95, 0.9])  # fmt: skip
    m = npca_summary(pairs, {"planted_cues": {"c0": ["tag"]}}, retrieval, models, classes, harmful)["models"]
    assert m["r"]["acc_before_ci"] == [0.75, 0.85] and m["e"]["acc_before_ci"] is None  # NaN: none
    assert m["e"]["retrieved_auc_after"] == 0.8 and m["e"]["retrieved_auc_after_ci"] == [0.7, 0.9]
    assert m["r"]["acc_after_ci"] is None and m["r"]["spurious_auc_before_ci"] is None  # columns absent


def test_npca_summary_gives_the_recovery_and_precision_intervals_per_kind():
    pairs, retrieval, models, classes, harmful = _npca_inputs(True, ["spurious", "core"] * 4)
    # the spurious components of c0 and c1 localise their cue (c2's does not): 2 of 3 cues recovered
    shows = pairs["class"].isin([0, 1]) & (pairs["feature"] == 0)
    pairs.loc[shows, ["cue_share", "hot_cue", "hot_object_cued", "area_rest"]] = [1.0, 0.9, 0.1, 0.0]
    planted = {"planted_cues": {"c0": ["tag"], "c1": ["stripe"], "c2": ["disk"]}}
    s = npca_summary(pairs, planted, retrieval, models, classes, harmful, seed=4)
    for key in ("planted_cues_recovered", "annotator_precision"):
        assert set(s[f"{key}_ci"]) == set(s[key]) == {"npca", "neurons_top5", "neurons_top10"}
    rec, ci = s["planted_cues_recovered"]["npca"], s["planted_cues_recovered_ci"]["npca"]
    assert rec == 2 / 3 and ci[0] <= rec <= ci[1] and ci[0] < ci[1]
    prec, ci = s["annotator_precision"]["npca"], s["annotator_precision_ci"]["npca"]
    assert prec == 0.5 and ci[0] <= prec <= ci[1] and ci[0] < ci[1]
    assert npca_summary(pairs, planted, retrieval, models, classes, harmful, seed=4) == s  # same seed, same numbers
    # every planted cue recovered: zero width
    s = npca_summary(pairs, {"planted_cues": {"c0": ["tag"], "c1": ["stripe"]}}, retrieval, models, classes, harmful)
    assert s["planted_cues_recovered"]["npca"] == 1.0 and s["planted_cues_recovered_ci"]["npca"] == [1.0, 1.0]
    # without planted truth: no interval either
    none = npca_summary(_npca_inputs(False, ["spurious", "core"] * 4)[0], {}, retrieval, models, classes, harmful)
    assert none["planted_cues_recovered_ci"] is None and none["annotator_precision_ci"] is None


def test_npca_summary_gives_the_repaired_classes_their_interval():
    """The repaired classes' mean cue-only AUC takes its interval from the models table's
    `cue_only_auc_repaired_*_ci_*` (stage `npca_spufix`); none where the table has none, or where
    no class was repaired."""
    pairs, retrieval, models, classes, harmful = _npca_inputs(True, ["spurious", "core"] * 4)
    models = models.assign(cue_only_auc_repaired_before_ci_low=[0.5, 0.4], cue_only_auc_repaired_before_ci_high=[0.7, 0.6],
                           cue_only_auc_repaired_after_ci_low=[0.6, np.nan],
                           cue_only_auc_repaired_after_ci_high=[0.8, np.nan])  # fmt: skip
    m = npca_summary(pairs, {"planted_cues": {"c0": ["tag"]}}, retrieval, models, classes, harmful)["models"]
    assert m["r"]["spurious_auc_repaired_before"] == 0.6 and m["r"]["spurious_auc_repaired_before_ci"] == [0.5, 0.7]
    assert m["r"]["spurious_auc_repaired_after"] == 0.7 and m["r"]["spurious_auc_repaired_after_ci"] == [0.6, 0.8]
    # model e has no class rows (nothing repaired for it here): no number, so no interval
    assert m["e"]["spurious_auc_repaired_before"] is None and m["e"]["spurious_auc_repaired_before_ci"] is None
    old = npca_summary(pairs, {"planted_cues": {"c0": ["tag"]}}, retrieval, _npca_inputs(True, ["core"] * 8)[2],
                       classes, harmful)["models"]  # fmt: skip
    assert old["r"]["spurious_auc_repaired_before"] == 0.6 and old["r"]["spurious_auc_repaired_before_ci"] is None
