"""Automatic annotator and planted truth (docs/methods.md#annotation) on hand-made localisation statistics."""

import numpy as np
import pandas as pd
import pytest

from spurlab.discover.annotate import ANNOTATION_COLUMNS
from spurlab.discover.auto_annotate import (
    auto_annotations,
    background_cues,
    cue_switched_off,
    is_spurious_auto,
    localises_cue,
    score_against_truth,
    score_intervals,
)
from spurlab.discover.subsets_file import STAT_COLUMNS, pair_region_stats, region_masks

COLUMNS = ["class", "feature", "rank", "mass_object", "area_object", "hot_object", "mass_cue", "area_cue", "hot_cue",
           "mass_rest", "area_rest", "hot_rest"]  # fmt: skip


def _pairs():
    # class 0 has a tag cue (area 0.1); class 1 a background cue (all non-object pixels); class 2 none
    rows = [
        (0, 10, 1, 0.05, 0.1, 0.00, 0.60, 0.1, 0.70, 0.35, 0.8, 0.30),  # on the tag: spurious, localises
        (0, 11, 2, 0.40, 0.1, 0.80, 0.05, 0.1, 0.00, 0.55, 0.8, 0.20),  # on the object: core
        (0, 12, 3, 0.05, 0.1, 0.05, 0.08, 0.1, 0.10, 0.87, 0.8, 0.85),  # diffuse background, not the tag
        (1, 20, 1, 0.05, 0.1, 0.10, 0.95, 0.9, 0.90, 0.00, 0.0, 0.00),  # background cue
        (1, 21, 2, 0.35, 0.1, 0.70, 0.65, 0.9, 0.30, 0.00, 0.0, 0.00),  # object
        (2, 30, 1, 0.30, 0.1, 0.60, 0.00, 0.0, 0.00, 0.70, 0.9, 0.40),  # control class, core
        (2, 31, 2, 0.02, 0.1, 0.00, 0.00, 0.0, 0.00, 0.98, 0.9, 1.00),  # control class, off-object, no cue
    ]
    df = pd.DataFrame(rows, columns=COLUMNS)
    # every image of classes 0 and 1 shows its cue (so the object's hot share is the same on them); class 2 has none
    df["cue_share"] = np.where(df["class"] < 2, 1.0, 0.0)
    df["hot_object_cued"] = np.where(df["class"] < 2, df["hot_object"], np.nan)
    df["hot_object_near"] = df["hot_object"]  # no margin around the object
    df.insert(1, "class_name", df["class"].map({0: "triangle", 1: "disk", 2: "heart"}))
    return df


def test_hot_and_mass_criteria():
    p = _pairs()
    np.testing.assert_array_equal(is_spurious_auto(p, "hot"), [True, False, True, True, False, False, True])
    # the literal reading (> 50% of the mass off the object) calls everything spurious here
    assert is_spurious_auto(p, "mass").all()
    with pytest.raises(ValueError, match="criterion"):
        is_spurious_auto(p, "vote")


def test_hot_criterion_reads_the_object_grown_by_the_margin():
    """A map centred on a small object whose hot region spills past it: off the object by its mask,
    on it once the mask is grown by the margin (`hot_object_near`), which is what the annotator reads."""
    p = _pairs()
    p.loc[1, "hot_object"], p.loc[1, "hot_object_near"] = 0.2, 0.8
    assert not is_spurious_auto(p, "hot")[1]
    assert auto_annotations(p)["hot_outside_object"].iloc[1] == pytest.approx(0.2)


def test_truth_needs_the_cue_to_hold_the_hot_region():
    np.testing.assert_array_equal(localises_cue(_pairs()), [True, False, False, True, False, False, False])


def test_cue_statistics_are_taken_on_the_images_that_show_the_cue():
    """A class showing its (background) cue on 3 of 5 images: a map on the cue wherever it is shown
    localises it, however rare the cue is on the other images; shown on 2 of 5 it is not the pair's."""
    n, size = 5, 4
    obj = np.zeros((n, size, size), bool)
    obj[:, :2, :2] = True
    shown = np.array([True, True, True, False, False])
    cue = ~obj & shown[:, None, None]  # background cue: every non-object pixel where shown
    nam = np.where(cue, 1.0, 0.0) + np.where(obj & ~shown[:, None, None], 1.0, 0.0)  # on the object where no cue
    stats = pair_region_stats(nam, region_masks(obj, cue))
    assert set(stats) == set(STAT_COLUMNS)
    assert stats["cue_share"] == pytest.approx(0.6)
    assert stats["hot_cue"] == 1.0 and stats["hot_object_cued"] == 0.0  # not diluted to 0.6
    assert stats["hot_object"] == pytest.approx(0.4)  # the annotator's statistic stays over all images
    assert stats["hot_object_near"] == stats["hot_object"]  # no margin: the mask itself
    assert stats["area_rest"] == 0.0
    assert localises_cue(pd.DataFrame([stats])).tolist() == [True]
    rare = ~obj & np.array([True, True, False, False, False])[:, None, None]
    stats = pair_region_stats(np.where(rare, 1.0, 0.0), region_masks(obj, rare))
    assert stats["cue_share"] == pytest.approx(0.4) and localises_cue(pd.DataFrame([stats])).tolist() == [False]
    # no masks: nothing measured
    assert all(np.isnan(v) for v in pair_region_stats(nam, None).values())


def test_auto_table_has_the_human_table_columns_and_scores():
    p = _pairs()
    table = auto_annotations(p)
    assert list(table.columns[: len(ANNOTATION_COLUMNS)]) == list(ANNOTATION_COLUMNS)
    assert (table["source"] == "auto").all()
    planted = {"triangle": ["hospital_tag"], "disk": ["water_bg"]}
    score = score_against_truth(table, p, planted)
    # spurious: (0,10) (0,12) (1,20) (2,31); truly localising: (0,10) (1,20)
    assert (score["true_positives"], score["false_positives"], score["false_negatives"]) == (2, 2, 0)
    assert score["precision"] == 0.5 and score["recall"] == 1.0
    assert score["planted_cues_recovered"] == 1.0
    # a human table calling the tag feature core loses that cue
    human = table.copy()
    human.loc[human["feature_index"] == 10, "label"] = "core"
    score = score_against_truth(human, p, planted)
    assert score["recovered"] == {"disk/water_bg": True, "triangle/hospital_tag": False}
    assert score["planted_cues_recovered"] == 0.5


def test_scores_carry_their_bootstrap_intervals_over_pairs():
    """Precision and recall: every class-feature pair resampled with its annotation and truth, both
    ratios recomputed; recovery: the planted (class, cue) pairs resampled. Seeded, so repeatable."""
    p = _pairs()
    table = auto_annotations(p)
    planted = {"triangle": ["hospital_tag"], "disk": ["water_bg"]}
    score = score_against_truth(table, p, planted, seed=3)
    low, high = score["precision_ci"]
    assert low <= score["precision"] == 0.5 <= high and low < high  # the pairs disagree: some width
    assert score["recall_ci"] == [1.0, 1.0]  # every truly spurious pair found: no resample says otherwise
    assert score["planted_cues_recovered_ci"] == [1.0, 1.0]
    again = score_against_truth(table, p, planted, seed=3)
    assert {k: again[k] for k in ("precision_ci", "recall_ci")} == {k: score[k] for k in ("precision_ci", "recall_ci")}
    human = table.copy()
    human.loc[human["feature_index"] == 10, "label"] = "core"
    lost = score_against_truth(human, p, planted | {"heart": ["stripe"]}, seed=3)
    low, high = lost["planted_cues_recovered_ci"]
    assert low <= lost["planted_cues_recovered"] <= high and low < high


def test_score_intervals_of_the_ratios():
    rng = np.random.default_rng(0)
    truth = rng.random(60) < 0.3
    pred = truth.copy()
    same = score_intervals(pred, truth, {"a/q": True, "b/q": True}, seed=1)
    assert same == {"precision_ci": [1.0, 1.0], "recall_ci": [1.0, 1.0], "planted_cues_recovered_ci": [1.0, 1.0]}
    pred[:10] = ~pred[:10]  # some false positives and some misses
    prec, rec = (pred & truth).sum() / pred.sum(), (pred & truth).sum() / truth.sum()
    ci = score_intervals(pred, truth, {}, seed=1)
    for value, (low, high) in ((prec, ci["precision_ci"]), (rec, ci["recall_ci"])):
        assert low <= value <= high and low < high
    assert ci["planted_cues_recovered_ci"] is None  # nothing planted
    assert ci == score_intervals(pred, truth, {}, seed=1) and ci != score_intervals(pred, truth, {}, seed=2)
    # precision and recall resample differently (keys), and a different key moves both
    assert score_intervals(pred, truth, {}, seed=1, key="other") != ci
    # no truly spurious pair: recall is undefined, so it has no interval
    assert score_intervals(pred, np.zeros(60, bool), {}, seed=1)["recall_ci"] is None


def test_auto_annotation_needs_object_masks():
    p = _pairs()
    p.loc[0, "mass_object"] = np.nan
    with pytest.raises(ValueError, match="object masks"):
        auto_annotations(p)


def _switch_data(n=200, seed=0):
    """Classes 0 (owns background cue q), 1 and 2; q drawn at random for 1 and 2 (as the generator does)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n)
    on = np.where(labels == 0, rng.random(len(labels)) < 0.9, rng.random(len(labels)) < 0.2)
    base = rng.lognormal(0.0, 0.5, len(labels))  # activations spread over images, as real ones do
    columns = {
        40: np.where(on, 0.02, 1.0) * base,  # detects the background q replaces: switched off
        41: np.where(on, 0.7, 1.0) * base,  # a core feature dimmed by the cue's contrast: kept
        42: np.where(on, 0.0, 1.0) * base,  # switched off, ranked by q's own class
        43: np.zeros(len(labels)),  # never active: nothing to switch off
        # switched off, except on 5% of the cued images, which are three times as active as usual
        44: np.where(on, np.where(rng.random(len(labels)) < 0.05, 3.0, 0.02), 1.0) * base,
        # sparse, as a clipped NPCA component: active on 40% of the cue-free images, never with q
        45: np.where(on, 0.0, np.where(rng.random(len(labels)) < 0.4, 1.0, 0.0)) * base,
    }
    pairs = pd.DataFrame({"class": [1, 1, 0, 2, 2, 2], "feature": [40, 41, 42, 43, 44, 45]})
    return pairs, columns, labels, {"q": on}, {"q": {0}}


def test_switched_off_features_are_found_by_the_randomised_cue():
    pairs, columns, labels, flags, owners = _switch_data()
    # a class that shows q itself (42) can rank a feature q switches off: truly spurious too
    assert cue_switched_off(pairs, columns, labels, flags, owners) == ["q", None, "q", None, "q", "q"]
    # the threshold is on the ratio of the two means: 0.7 is switched off under a ratio of 0.8
    assert cue_switched_off(pairs, columns, labels, flags, owners, ratio=0.8)[:2] == ["q", "q"]
    # too few images with the cue among the other classes: no verdict
    assert cue_switched_off(pairs, columns, labels, flags, owners, min_images=10_000) == [None] * 6


def test_a_few_active_cued_images_do_not_decide():
    """Feature 44 is off on 95% of the cued images, but the other 5% lift the plain mean with the
    cue above 10% of the mean without; the trimmed mean is what decides. Feature 45 (sparse, never
    on with the cue) is switched off although a rank statistic would put it near chance."""
    from sklearn.metrics import roc_auc_score

    pairs, columns, labels, flags, owners = _switch_data()
    rows = labels != 0
    with_q, without = columns[44][rows & flags["q"]], columns[44][rows & ~flags["q"]]
    assert with_q.mean() / without.mean() > 0.1
    assert cue_switched_off(pairs, columns, labels, flags, owners, trim=0.0)[4] is None
    assert cue_switched_off(pairs, columns, labels, flags, owners)[4] == "q"
    with_q, without = columns[45][rows & flags["q"]], columns[45][rows & ~flags["q"]]
    assert roc_auc_score(np.r_[np.zeros(len(with_q)), np.ones(len(without))], np.r_[with_q, without]) < 0.75
    # the verdict depends on the feature only: the same feature ranked by two classes gets one verdict
    twice = pd.DataFrame({"class": [1, 2], "feature": [44, 44]})
    assert cue_switched_off(twice, columns, labels, flags, owners) == ["q", "q"]


def test_truth_counts_switched_off_features_and_reports_presence_alone():
    p = _pairs()
    table = auto_annotations(p)
    planted = {"triangle": ["hospital_tag"], "disk": ["water_bg"]}
    # (2,31): the control class's off-object feature is switched off by disk's water
    off = [None] * 6 + ["water_bg"]
    score = score_against_truth(table, p, planted, off)
    assert (score["true_positives"], score["false_positives"], score["false_negatives"]) == (3, 1, 0)
    assert score["precision"] == 0.75 and score["precision_presence_only"] == 0.5
    assert score["n_cue_present"] == 2 and score["n_cue_switched_off"] == 1
    assert score["switched_off_list"] == {"heart/31": "water_bg"}
    assert score["truth"] == [True, False, False, True, False, False, True]
    # NaN (a missing value read back from a table) is no cue
    assert score_against_truth(table, p, planted, [np.nan] * 6 + ["water_bg"])["truth"] == score["truth"]
    # recovering a planted cue still needs a feature that shows it
    assert score["recovered"] == {"disk/water_bg": True, "triangle/hospital_tag": True}


def test_background_cues_of_a_generated_set(tiny_cfg, tmp_path):
    from spurlab.data.imagesets import ImageSet
    from tests.conftest import render_sets, small

    s = ImageSet(render_sets(small(tiny_cfg, test=60), ["test"], tmp_path)["test"])
    flags, owners = background_cues(s)
    cues = s.attrs["config"]["datasets"]["cues"]
    want = sorted(q for q, spec in cues.items() if spec["type"] in ("background", "blur"))
    assert sorted(flags) == want and want
    meta = s.meta()
    for q in want:
        np.testing.assert_array_equal(flags[q], meta[f"cue_{q}"].to_numpy().astype(bool))
        table = s.attrs["config"]["datasets"]["cue_table"]
        assert owners[q] == {s.class_names.index(c) for c, row in table.items() if row["cue"] == q}
