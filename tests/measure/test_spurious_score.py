"""Spurious score (docs/methods.md#spurious-score): AUC/AP oracles, per-class bookkeeping, cue-only negatives."""

import numpy as np
import pytest

from spurlab.measure.spurious_score import class_score, mean_scores, softmax, spurious_scores


def test_class_score_oracles():
    assert class_score(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.3])) == (1.0, 1.0)
    auc, ap = class_score(np.array([0.1, 0.2]), np.array([0.8, 0.9]))
    assert auc == 0.0 and ap == pytest.approx(0.5 * (1 / 3 + 2 / 4))  # positives ranked last
    auc, _ = class_score(np.array([0.5, 0.2]), np.array([0.4, 0.1]))  # 3 of 4 pairs ordered
    assert auc == 0.75
    assert all(np.isnan(class_score(np.array([0.5]), np.array([]))))


def test_per_class_table_and_means():
    rng = np.random.default_rng(0)
    logits_pos = rng.standard_normal((60, 3))
    labels = np.arange(60) % 3
    logits_pos[np.arange(60), labels] += 4  # confident on its class
    logits_neg = rng.standard_normal((20, 3))
    logits_neg[:10, 0] += 8  # the cue fools class 0's score completely
    t = spurious_scores(softmax(logits_pos), labels, softmax(logits_neg), {0: np.arange(10), 2: np.arange(10, 20)})
    assert t["class"].tolist() == [0, 2] and t["n_pos"].tolist() == [20, 20] and t["n_neg"].tolist() == [10, 10]
    assert t.loc[0, "spurious_auc"] < 0.3 and t.loc[1, "spurious_auc"] > 0.95
    m = mean_scores(t)
    assert m["classes"] == 2 and m["spurious_auc"] == pytest.approx(t["spurious_auc"].mean())
    np.testing.assert_allclose(softmax(logits_pos).sum(1), 1.0)


def test_retrieval_keeps_out_of_class_images_predicted_as_the_class_by_alpha():
    from spurlab.discover.retrieval import retrieval_precision, retrieve

    alpha = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    labels = np.array([1, 2, -1, 1, -1, 2])
    preds = np.array([1, 1, 1, 1, 1, 0])
    # row 0 and 3 have label 1 (in class), row 5 is not predicted as 1
    assert retrieve(alpha, labels, preds, 1, max_images=10).tolist() == [1, 2, 4]
    assert retrieve(alpha, labels, preds, 1, max_images=2).tolist() == [1, 2]
    import pandas as pd

    t = pd.DataFrame({"has_cue": [1.0, 0.0, 1.0, np.nan], "object_absent": [1.0, 1.0, 1.0, np.nan]})
    assert retrieval_precision(t) == pytest.approx(2 / 3)
    assert retrieval_precision(t.iloc[3:]) is None


def test_harm_rate_is_the_share_of_the_top_out_of_class_images_predicted_as_the_class():
    import pandas as pd

    from spurlab.discover.retrieval import harm_rate, harmful_components

    alpha = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])
    labels = np.array([1, 0, 2, 0, 2, 0, 1])
    preds = np.array([1, 1, 0, 1, 1, 0, 1])
    # out of class 1: rows 1..5 by alpha; predicted 1: rows 1, 3, 4
    assert harm_rate(alpha, labels, preds, 1, top=2) == pytest.approx(0.5)  # rows 1, 2
    assert harm_rate(alpha, labels, preds, 1, top=4) == pytest.approx(0.75)  # rows 1-4
    assert harm_rate(alpha, labels, preds, 1, top=10) == pytest.approx(0.6)  # all five
    assert harm_rate(-alpha, labels, preds, 1, top=2) == pytest.approx(0.5)  # rows 5, 4
    assert np.isnan(harm_rate(alpha, np.ones(7, int), preds, 1))  # no out-of-class image
    t = pd.DataFrame({"class": [3, 3, 5, 7], "component": [4, 1, 0, 2], "harmful": [True, True, False, True]})
    assert harmful_components(t) == {3: [1, 4], 7: [2]}


def test_cue_only_negatives_follow_the_planted_cue_flags(tmp_path):
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan
    from spurlab.discover.subsets import planted_cue_masks
    from spurlab.measure.spurious_score import cue_only_negatives
    from tests.conftest import load_yaml

    cfg = load_yaml("tiny.yaml")
    plan, attrs = build_plan(cfg, "cue_only")
    write_imageset(tmp_path / "c.h5", plan.n, plan.chunks(), attrs)
    s = ImageSet(tmp_path / "c.h5")
    planted = planted_cue_masks(s)
    neg = cue_only_negatives(s, planted)
    names = s.class_names
    assert set(neg) == {names.index(c) for c in planted}  # classes with a cue, no controls
    meta = s.meta()
    for cname, cues in planted.items():
        rows = neg[names.index(cname)]
        assert len(rows) > 0 and meta.loc[rows, f"cue_{cues[0]}"].astype(bool).all()
        assert not s.meta(["object_present"]).to_numpy()[rows].any()  # cue only, no object
        others = np.setdiff1d(np.arange(len(s)), rows)
        assert not meta.loc[others, f"cue_{cues[0]}"].astype(bool).any()
