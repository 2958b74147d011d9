"""Spuriosity rankings and spurious gaps (docs/methods.md#spuriosity-rankings): oracles and invariants."""

import numpy as np
import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.measure.spuriosity import (
    class_statistics,
    effective_robustness,
    effective_robustness_cis,
    gap_cis,
    gap_correlations,
    high_low,
    rank_within_class,
    scores_for_set,
    spuriosity,
    spuriosity_auc,
    spurious_features,
    spurious_gaps,
)


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [50, 40, 30])
    feats = rng.normal(3.0, 2.0, (len(labels), 6)).astype(np.float32)
    spur = {0: [1, 4], 1: [2]}  # class 2 has no spurious feature
    return feats, labels, spur


def test_spurious_features_reads_the_annotation_table():
    ann = pd.DataFrame({"class_index": [0, 0, 1, 2], "feature_index": [5, 3, 7, 1],
                        "label": ["spurious", "spurious", "core", "spurious"]})  # fmt: skip
    assert spurious_features(ann) == {0: [3, 5], 2: [1]}


def test_per_class_zscores_have_mean_zero_and_std_one(toy):
    feats, labels, spur = toy
    stats = class_statistics(feats, labels, spur)
    for c, cols in spur.items():
        mu, sigma = stats[c]
        z = (feats[labels == c][:, cols] - mu) / sigma
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(z.std(0), 1, atol=1e-9)
    s = spuriosity(feats, labels, spur, stats)
    assert np.isnan(s[labels == 2]).all() and not np.isnan(s[labels < 2]).any()
    np.testing.assert_allclose(s[labels == 1].std(), 1, atol=1e-9)  # one feature: spuriosity is its z-score
    one = {0: [1]}
    r = feats[labels == 0, 1].astype(np.float64)
    expected = (r - r.mean()) / r.std()
    np.testing.assert_allclose(
        spuriosity(feats, labels, one, class_statistics(feats, labels, one))[labels == 0], expected
    )


def test_constant_feature_contributes_zero_not_nan():
    feats = np.ones((4, 2), np.float32)
    labels = np.zeros(4, np.int64)
    s = spuriosity(feats, labels, {0: [0]}, class_statistics(feats, labels, {0: [0]}))
    np.testing.assert_array_equal(s, 0)


def test_high_and_low_are_the_true_k_extremes_and_disjoint():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=100)
    rows = np.arange(100)[::3]  # 34 rows
    high, low = high_low(scores, rows, 10)
    by_score = rows[np.argsort(-scores[rows])]
    assert set(high) == set(by_score[:10]) and set(low) == set(by_score[-10:])
    assert not set(high) & set(low)
    high, low = high_low(scores, rows[:5], 10)  # a class smaller than k: every image on both sides
    assert len(high) == len(low) == 5


def test_rank_is_zero_for_the_highest_and_ties_keep_row_order():
    scores = np.array([0.5, 2.0, 0.5, np.nan, 1.0, -1.0])
    labels = np.array([0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(rank_within_class(scores, labels), [1, 0, 2, -1, 0, 1])


def test_perfect_classifier_has_zero_gap_and_a_cue_reliant_one_a_positive_gap(toy):
    feats, labels, spur = toy
    s = spuriosity(feats, labels, spur, class_statistics(feats, labels, spur))
    g = spurious_gaps(np.ones(len(labels), bool), s, labels, k=10)
    assert list(g["class_index"]) == [0, 1] and (g["gap"] == 0).all() and (g["k"] == 10).all()
    correct = np.zeros(len(labels), bool)
    for c in (0, 1):  # right exactly on the class's upper half of spuriosity
        rows = np.flatnonzero(labels == c)
        correct[rows] = s[rows] > np.median(s[rows])
    g = spurious_gaps(correct, s, labels, k=10)
    np.testing.assert_array_equal(g["gap"], [1.0, 1.0])


def test_gap_intervals_resample_each_end_within_its_class(toy):
    feats, labels, spur = toy
    s = spuriosity(feats, labels, spur, class_statistics(feats, labels, spur))
    ci = gap_cis(np.ones(len(labels), bool), s, labels, 10, 0, key="m")
    assert [ci["mean_gap_ci_low"], ci["mean_gap_ci_high"], ci["acc_ci_low"], ci["acc_ci_high"]] == [0, 0, 1, 1]
    rng = np.random.default_rng(1)
    correct = rng.random(len(labels)) < np.where(s > np.nanmedian(s), 0.9, 0.4)  # right more often when spurious
    g = spurious_gaps(correct, s, labels, k=10)
    ci = gap_cis(correct, s, labels, 10, 0, key="m")
    for name, value in (("mean_gap", g["gap"].mean()), ("acc_high", g["acc_high"].mean()),
                        ("acc_low", g["acc_low"].mean()), ("acc", correct.mean())):  # fmt: skip
        assert ci[f"{name}_ci_low"] <= value <= ci[f"{name}_ci_high"], name
    assert ci["mean_gap_ci_high"] - ci["mean_gap_ci_low"] < 0.8 and ci == gap_cis(correct, s, labels, 10, 0, key="m")
    # every class's two ends keep their k images: with one image per end there is nothing to resample
    one = gap_cis(correct, s, labels, 1, 0, key="m", metrics=("mean_gap",))
    assert set(one) == {"mean_gap_ci_low", "mean_gap_ci_high"} and np.isnan(one["mean_gap_ci_low"])


def test_effective_robustness_is_the_residual_of_the_suite_line():
    hi = pd.Series([0.9, 0.8, 0.7, 0.6], index=list("abcd"))
    lo = 0.5 * hi - 0.1
    np.testing.assert_allclose(effective_robustness(hi, lo), 0, atol=1e-12)
    lo2 = lo.copy()
    lo2["b"] += 0.2
    er = effective_robustness(hi, lo2)
    assert er.idxmax() == "b" and er["b"] > 0.1
    assert effective_robustness(hi[:1], lo[:1]).isna().all()


def test_effective_robustness_intervals_refit_the_line_on_each_resample(toy):
    """One resample of the images serves every model: the interval holds the model's residual,
    collapses when no image's outcome varies, and is None for a suite of one."""
    feats, labels, spur = toy
    s = spuriosity(feats, labels, spur, class_statistics(feats, labels, spur))
    rng = np.random.default_rng(3)
    upper = s > np.nanmedian(s)
    correct = {m: rng.random(len(labels)) < np.where(upper, hi, lo)
               for m, hi, lo in (("a", 0.9, 0.4), ("b", 0.8, 0.7), ("c", 0.95, 0.2), ("d", 0.6, 0.55))}  # fmt: skip
    g = {m: spurious_gaps(c, s, labels, k=10) for m, c in correct.items()}
    er = effective_robustness(pd.Series({m: x["acc_high"].mean() for m, x in g.items()}),
                              pd.Series({m: x["acc_low"].mean() for m, x in g.items()}))  # fmt: skip
    cis = effective_robustness_cis(correct, s, labels, 10, seed=0)
    for m in correct:
        assert cis[m][0] <= er[m] <= cis[m][1] and cis[m][1] > cis[m][0], m
    assert cis == effective_robustness_cis(correct, s, labels, 10, seed=0)
    fixed = {m: np.where(upper, m in "ac", m in "bd") for m in "abcd"}  # the same outcome on every resample
    assert all(lo == hi for lo, hi in effective_robustness_cis(fixed, s, labels, 10, seed=0).values())
    assert effective_robustness_cis({"a": correct["a"]}, s, labels, 10, seed=0) == {"a": None}


def test_gap_correlations_pearson_and_undefined_cases():
    g = pd.DataFrame({"a": [0.1, 0.5, 0.3, -0.2], "b": [0.2, 1.0, 0.6, -0.4], "c": [0.3, 0.3, 0.3, 0.3]})
    r = gap_correlations(g).set_index(["model_a", "model_b"])["pearson_r"]
    assert r[("a", "b")] == pytest.approx(1.0)
    assert np.isnan(r[("a", "c")]) and np.isnan(r[("b", "c")])


def test_spuriosity_auc_against_cue_flags():
    labels = np.repeat([0, 1], 20)
    cue = np.tile([1, 0], 20).astype(float)
    scores = cue + np.linspace(0, 0.5, 40)
    auc = spuriosity_auc(scores, labels, cue)
    assert auc == {0: 1.0, 1: 1.0}
    assert np.isnan(spuriosity_auc(scores, labels, np.ones(40))[0])


def test_scores_for_set_orders_rows_and_checks_sizes():
    t = pd.DataFrame({"set": ["val"] * 3 + ["train"], "row": [2, 0, 1, 0], "spuriosity": [0.2, 0.0, np.nan, 9.0]})
    np.testing.assert_array_equal(scores_for_set(t, "val", 3), [0.0, np.nan, 0.2])
    with pytest.raises(SpurlabError, match="set 'val' has 3 rows, the feature cache 4"):
        scores_for_set(t, "val", 4)
    with pytest.raises(SpurlabError, match="no rows for set 'test'"):
        scores_for_set(t, "test", 3)


def test_rankings_and_gaps_stages_on_tiny_files(tmp_path):
    from spurlab.io.tables import read_table, table_provenance, write_table
    from spurlab.measure.spuriosity import GapSettings, RankingSettings, read_rankings, run_gaps, run_rankings
    from tests.conftest import salient_stages

    d = tmp_path
    _, s = salient_stages(d)
    ann = read_table(d / "ann.parquet")
    ann.loc[:, "label"] = "core"
    ann.loc[ann["feature_rank"] == 1, "label"] = "spurious"  # each class's top feature
    write_table(ann, d / "ann1.parquet", {"test": True})
    run_rankings(d / "ann1.parquet", d / "model", {"test": str(d / "f.h5")}, {"test": str(d / "test.h5")},
                 d / "rank.parquet", RankingSettings("test"))  # fmt: skip
    r = read_rankings(d / "rank.parquet", d / "ann1.parquet")
    assert len(r) == len(s) and (r["row"].to_numpy() == np.arange(len(s))).all()
    assert r["spuriosity"].notna().all() and (r.groupby("class_index")["rank"].min() == 0).all()
    assert r["cue_present"].notna().sum() > 0  # tiny.yaml plants cues on some classes
    top = dict(
        zip(ann.loc[ann["feature_rank"] == 1, "class_index"], ann.loc[ann["feature_rank"] == 1, "feature_index"])
    )
    assert table_provenance(d / "rank.parquet")["spurious_features"] == {str(c): [int(j)] for c, j in top.items()}
    info = run_gaps(d / "rank.parquet", {"m": (str(d / "model"), str(d / "f.h5"))}, d / "g.parquet", d / "gm.parquet",
                    d / "gc.parquet", GapSettings("test", 3))  # fmt: skip
    g = read_table(d / "g.parquet")
    assert info["classes"] == len(s.class_names) and g["gap"].between(-1, 1).all() and (g["k"] == 3).all()
    # every class's gap with its interval (each end's images resampled within the end)
    assert ((g["gap_ci_low"] <= g["gap"] + 1e-9) & (g["gap"] <= g["gap_ci_high"] + 1e-9)).all()
    # a suite of one has no line to be above, so no interval either
    assert read_table(d / "gm.parquet")[["effective_robustness", "effective_robustness_ci_low"]].isna().all().all()
    with pytest.raises(SpurlabError, match="annotations_sha256"):
        read_rankings(d / "rank.parquet", d / "ann.parquet")
    ann["label"] = "core"
    write_table(ann, d / "none.parquet", {})
    with pytest.raises(SpurlabError, match="no .class, feature. pair is annotated spurious"):
        run_rankings(d / "none.parquet", d / "model", {"test": str(d / "f.h5")}, {"test": str(d / "test.h5")},
                     d / "x.parquet", RankingSettings("test"))  # fmt: skip
    assert not (d / "x.parquet").exists()


def test_class_gap_intervals_resample_each_end_of_the_class():
    from spurlab.measure.spuriosity import class_gap_cis

    labels = np.repeat([0, 1, 2], 20)
    s = np.where(labels == 2, np.nan, np.tile(np.arange(20.0), 3))  # class 2 is not ranked
    correct = np.ones(60, bool)
    correct[20:40] = np.random.default_rng(0).random(20) < 0.5  # class 1: its images disagree
    g = spurious_gaps(correct, s, labels, k=5).set_index("class_index")
    ci = class_gap_cis(correct, s, labels, 5, 0, key="m").set_index("class_index")
    assert list(ci.index) == [0, 1] and list(ci.loc[0]) == [0.0, 0.0]  # every image right: zero width
    low, high = ci.loc[1, "gap_ci_low"], ci.loc[1, "gap_ci_high"]
    assert low <= g.loc[1, "gap"] <= high and high - low > 0.3
    assert ci.equals(class_gap_cis(correct, s, labels, 5, 0, key="m").set_index("class_index"))
    # with one image per end both ends stay fixed: no interval
    assert class_gap_cis(correct, s, labels, 1, 0, key="m")["gap_ci_low"].isna().all()


def test_trial_intervals_resample_images_so_identical_trials_still_have_width(toy):
    from spurlab.measure.spuriosity import trial_gap_cis

    feats, labels, spur = toy
    s = spuriosity(feats, labels, spur, class_statistics(feats, labels, spur))
    correct = np.random.default_rng(1).random(len(labels)) < np.where(s > np.nanmedian(s), 0.9, 0.4)
    g = spurious_gaps(correct, s, labels, k=10)
    ci = trial_gap_cis(np.stack([correct] * 3), s, labels, 10, 0, key="m")
    assert ci["gap_trials_ci_low"] <= g["gap"].mean() <= ci["gap_trials_ci_high"]
    assert ci["acc_trials_ci_low"] < correct.mean() < ci["acc_trials_ci_high"]
    assert (
        ci["gap_trials_ci_high"] - ci["gap_trials_ci_low"] > 0.1 and ci["acc_trials_ci_high"] > ci["acc_trials_ci_low"]
    )
    assert ci == trial_gap_cis(np.stack([correct] * 3), s, labels, 10, 0, key="m")
    right = trial_gap_cis(np.ones((2, len(labels)), bool), s, labels, 10, 0, key="m")
    assert [right[f"{m}_trials_ci_{e}"] for m in ("gap", "acc") for e in ("low", "high")] == [0, 0, 1, 1]
