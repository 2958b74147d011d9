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


def test_cue_only_negatives_follow_the_planted_cue_flags(tmp_path):
    from spurlab.data.imagesets import ImageSet, planted_cue_masks, write_imageset
    from spurlab.data.sets import build_plan
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


def test_mean_auc_and_its_interval_resample_within_class_and_side():
    from spurlab.measure.spurious_score import mean_auc, mean_auc_ci
    from spurlab.stats import bootstrap_ci

    rng = np.random.default_rng(1)
    probs_pos, labels = softmax(rng.standard_normal((40, 3)) + 2 * np.eye(3)[np.arange(40) % 3]), np.arange(40) % 3
    probs_neg = softmax(rng.standard_normal((30, 3)))
    negatives = {0: np.arange(0, 10), 1: np.arange(10, 30)}  # class 2 has no negatives: left out
    table = spurious_scores(probs_pos, labels, probs_neg, negatives)
    ci = mean_auc_ci(probs_pos, labels, probs_neg, negatives, 0, "k")
    assert ci[0] <= mean_scores(table)["spurious_auc"] <= ci[1]
    score = np.r_[probs_pos[labels == 0, 0], probs_neg[:10, 0], probs_pos[labels == 1, 1], probs_neg[10:, 1]]
    cls = np.r_[np.zeros(14 + 10), np.ones(13 + 20)]
    pos = np.r_[np.ones(14), np.zeros(10), np.ones(13), np.zeros(20)]
    assert mean_auc(score, cls, pos) == pytest.approx(mean_scores(table)["spurious_auc"])  # sklearn's, by ranks
    assert ci == bootstrap_ci([score, cls, pos], mean_auc, 0, "k", strata=cls * 2 + pos.astype(int))
    assert mean_auc_ci(probs_pos, labels, probs_neg, {2: np.arange(0)}, 0, "k") is None
