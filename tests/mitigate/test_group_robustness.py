"""DFR, JTT and the mitigation summary on synthetic linear problems (docs/methods.md#group-robustness-and-last-layer-retraining)."""

import numpy as np
import pandas as pd
import pytest

import spurlab.mitigate.group_robustness as gr
from spurlab.errors import SpurlabError
from spurlab.measure.groups import group_ids, worst_group_accuracy
from spurlab.mitigate.group_robustness import (
    DFRSettings,
    JTTSettings,
    balanced_subsample,
    dfr_head,
    fit_l1_ovr,
    half_split,
    head_logits,
    jtt_head,
    jtt_weights,
    raw_head,
    standardiser,
)
from spurlab.mitigate.mitigation_summary import mitigation_table, summarize_mitigation

K = 3


def planted(n: int, rng, p_cue: float = 0.95, balanced: bool = False, core_noise: float = 1.0):
    """K classes; a noisy core feature per class and a clean spurious one: image of class y shows
    y's cue with probability p_cue, else another class's cue (Waterbirds' minority groups). Groups
    (class, own cue on/off); `balanced`: every other image has its own cue, as the counterfactual twins."""
    y = rng.integers(0, K, n)
    on = (np.arange(n) % 2 == 0) if balanced else rng.random(n) < p_cue
    a = np.where(on, y, (y + rng.integers(1, K, n)) % K)
    x = np.hstack([np.eye(K)[y] + rng.normal(0, core_noise, (n, K)), np.eye(K)[a] + rng.normal(0, 0.1, (n, K)),
                   rng.normal(0, 1, (n, 8))])  # fmt: skip
    return x, y, group_ids(y, on)


@pytest.mark.parametrize("seed", [0, 1])
def test_dfr_raises_worst_group_accuracy_over_an_erm_logistic_head(seed):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    (xtr, ytr, _), (xva, yva, gva) = planted(4000, rng), planted(1000, rng)
    xte, yte, gte = planted(2000, rng, balanced=True)
    erm = LogisticRegression(max_iter=1000).fit(xtr, ytr)
    erm_wga = worst_group_accuracy(erm.predict(xte) == yte, gte)
    W, b, info = dfr_head(xva, yva, gva, K, DFRSettings(seed=seed))
    dfr_wga = worst_group_accuracy(head_logits(W, b, xte).argmax(1) == yte, gte)
    assert erm_wga < 0.2 and dfr_wga > erm_wga + 0.2, (erm_wga, dfr_wga)
    assert info["C"] in gr.DFR_C and set(info["val_worst_group_by_C"]) == {str(c) for c in gr.DFR_C}
    # the head leans on the core features more than ERM's: its weight mass moved off the cue
    core, cue = np.abs(W[:, :K]).sum(), np.abs(W[:, K : 2 * K]).sum()
    erm_core, erm_cue = np.abs(erm.coef_[:, :K]).sum(), np.abs(erm.coef_[:, K : 2 * K]).sum()
    assert core / cue > erm_core / erm_cue


def test_dfr_and_jtt_are_deterministic():
    rng = np.random.default_rng(3)
    (xva, yva, gva), (xtr, ytr, _) = planted(600, rng), planted(1500, rng)
    a = dfr_head(xva, yva, gva, K, DFRSettings(seed=5, retrains=4))
    b = dfr_head(xva, yva, gva, K, DFRSettings(seed=5, retrains=4))
    c = dfr_head(xva, yva, gva, K, DFRSettings(seed=6, retrains=4))
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
    assert a[0].tobytes() != c[0].tobytes()  # the seed draws the subsamples
    train = {"features": xtr, "labels": ytr, "erm_correct": np.arange(len(ytr)) % 7 != 0}
    val = {"features": xva, "labels": yva, "groups": gva}
    j1, j2 = jtt_head(train, val, K, JTTSettings()), jtt_head(train, val, K, JTTSettings())
    assert j1[0].tobytes() == j2[0].tobytes() and j1[2] == j2[2]


def test_jtt_upweights_exactly_the_erm_heads_errors(monkeypatch):
    rng = np.random.default_rng(4)
    (xtr, ytr, _), (xva, yva, gva) = planted(900, rng), planted(300, rng)
    erm_correct = rng.random(len(ytr)) < 0.8
    w = jtt_weights(erm_correct, 37.0)
    assert (w[~erm_correct] == 37.0).all() and (w[erm_correct] == 1.0).all()
    seen = []
    real = gr.fit_weighted_head
    monkeypatch.setattr(
        gr, "fit_weighted_head", lambda x, y, weights, C, n: seen.append(weights) or real(x, y, weights, C, n)
    )
    _, _, info = jtt_head({"features": xtr, "labels": ytr, "erm_correct": erm_correct},
                          {"features": xva, "labels": yva, "groups": gva}, K, JTTSettings(lambda_up=(20, 50)))  # fmt: skip
    assert [np.unique(s[~erm_correct]).tolist() for s in seen] == [[20.0], [50.0]]
    assert all((s[erm_correct] == 1).all() for s in seen)
    assert info["n_upweighted"] == int((~erm_correct).sum()) and info["lambda_up"] in (20.0, 50.0)
    assert set(info["val_worst_group_by_lambda_up"]) == {"20", "50"}


def test_upweighting_errors_raises_their_accuracy():
    """On the training images the ERM head gets wrong, a head fit with them upweighted is right more often."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x, y, _ = planted(3000, rng)
    wrong = LogisticRegression(max_iter=1000).fit(x, y).predict(x) != y
    assert wrong.sum() > 20
    plain = gr.fit_weighted_head(x, y, jtt_weights(~wrong, 1.0), 1.0, K)
    up = gr.fit_weighted_head(x, y, jtt_weights(~wrong, 50.0), 1.0, K)
    acc_up, acc_plain = ((head_logits(*h, x[wrong]).argmax(1) == y[wrong]).mean() for h in (up, plain))
    assert acc_up > acc_plain + 0.3


def test_subsamples_splits_and_heads():
    rng = np.random.default_rng(0)
    groups = np.array([0] * 7 + [1] * 3 + [3] * 5 + [-1] * 2)
    rows = balanced_subsample(groups, rng)
    assert np.bincount(groups[rows]).tolist() == [3, 3, 0, 3] and (np.diff(rows) > 0).all()
    a, b = half_split(groups, rng)
    assert np.intersect1d(a, b).size == 0 and sorted(np.concatenate([a, b])) == list(range(15))
    assert np.bincount(groups[a]).tolist() == [4, 2, 0, 3]  # the first half takes the odd image
    x = rng.normal(2, 3, (50, 4))
    mean, scale = standardiser(x)
    coef, icpt = rng.normal(size=(3, 4)), rng.normal(size=3)
    W, b = raw_head(coef, icpt, mean, scale)
    np.testing.assert_allclose(head_logits(W, b, x), ((x - mean) / scale) @ coef.T + icpt, atol=1e-10)
    with pytest.raises(SpurlabError, match="class 2 has 0"):
        fit_l1_ovr(x, np.array([0, 1] * 25), 1.0, 3, 0)
    with pytest.raises(SpurlabError, match="no labelled image"):
        balanced_subsample(np.array([-1, -1]), rng)


def _table(model, wga: dict, trials=None):
    rows = []
    for method, values in wga.items():
        for t, v in enumerate(values if isinstance(values, list) else [values]):
            rows.append({"model": model, "method": method, "trial": t, "labels_needed": "none", "selected": f"s{t}",
                         "acc": 0.9, "gap": 0.1 * t, "acc_high": 0.9, "acc_low": 0.8, "worst_group_acc": v,
                         "worst_group": "disk/cue_off", "mean_group_acc": 0.8, "n_groups": 6})  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_averages_trials_and_judges_dfr_against_erm():
    table = pd.concat([_table("a", {"erm": 0.3, "dfr": 0.5, "low_spuriosity": [0.4, 0.6], "spufix": 0.35}),
                       _table("b", {"erm": 0.6, "dfr": 0.55, "spufix": 0.6})], ignore_index=True)  # fmt: skip
    groups = pd.DataFrame([{"model": m, "method": me, "trial": t, "class_index": 0, "class_name": "disk",
                            "cue_on": on, "n": 5, "acc": 0.2 + t / 10 + on / 2}
                           for m, me, t in table[["model", "method", "trial"]].itertuples(index=False)
                           for on in (False, True)])  # fmt: skip
    means = mitigation_table(table)
    low = means[(means["model"] == "a") & (means["method"] == "low_spuriosity")].iloc[0]
    assert low["worst_group_acc"] == pytest.approx(0.5) and low["trials"] == 2 and low["selected"] == "s0; s1"
    assert low["worst_group_acc_sem"] == pytest.approx(0.1)
    s = summarize_mitigation(table, groups)
    a = s["models"]["a"]["methods"]
    assert a["low_spuriosity"]["worst_group_minus_dfr"] == pytest.approx(0.0)
    assert a["spufix"]["worst_group_gain_over_erm"] == pytest.approx(0.05)
    assert a["low_spuriosity"]["group_acc"]["disk"] == {"cue_off": pytest.approx(0.25), "cue_on": pytest.approx(0.75)}
    assert s["acceptance"] == {"dfr_raises_worst_group": {"a": True, "b": False}, "holds": False}
    assert s["suite"]["methods"]["dfr"]["worst_group_acc"] == pytest.approx(0.525)
    assert s["method_order"] == ["erm", "dfr", "low_spuriosity", "spufix"]


def test_summary_reaches_the_metrics_table_the_acceptance_table_and_summary_md():
    from spurlab.report.acceptance import acceptance_points
    from spurlab.report.summary_md import summary_markdown
    from spurlab.report.tables import Vocabulary, flatten_summary

    table = _table("m1", {"erm": 0.3, "dfr": 0.5, "jtt": 0.35, "low_spuriosity": [0.4, 0.6], "spufix": 0.32})
    groups = pd.DataFrame([{"model": "m1", "method": me, "trial": t, "class_index": 0, "class_name": "disk",
                            "cue_on": on, "n": 5, "acc": 0.5} for me, t in table[["method", "trial"]].itertuples(index=False)
                           for on in (False, True)])  # fmt: skip
    s = summarize_mitigation(table, groups)
    rows = flatten_summary("mitigation", s, Vocabulary(models=["m1"], classes=["disk"]))
    wga = rows[(rows["metric"] == "models/methods/worst_group_acc") & (rows["model"] == "m1")].set_index("method")[
        "value"
    ]
    assert wga.to_dict() == pytest.approx({"erm": 0.3, "dfr": 0.5, "jtt": 0.35, "low_spuriosity": 0.5, "spufix": 0.32})
    per_group = rows[(rows["class_name"] == "disk") & (rows["method"] == "dfr")]
    assert set(per_group["metric"]) == {"models/methods/group_acc/cue_on", "models/methods/group_acc/cue_off"}
    low = rows[(rows["metric"] == "models/methods/worst_group_acc") & (rows["method"] == "low_spuriosity")]
    assert low["sem"].iloc[0] == pytest.approx(0.1)  # over the two trials
    (point,) = [p for p in acceptance_points({"mitigation": s}) if p.stage == "mitigation"]
    # each worst-group accuracy with its bootstrap interval over the groups' images (every group 0.5 of 5)
    ci = {m: e["worst_group_acc_ci"] for m, e in s["models"]["m1"]["methods"].items()}
    assert all(0 <= c[0] < c[1] <= 0.6 for c in ci.values())
    e, d, f = ci["erm"], ci["dfr"], ci["spufix"]
    assert point.holds is True and point.value == f"m1 0.3 [{e[0]:.3g}, {e[1]:.3g}] -> 0.5 [{d[0]:.3g}, {d[1]:.3g}]"
    md = summary_markdown({"mitigation": s})
    assert f"| m1 | spufix | 0.32 [{f[0]:.3g}, {f[1]:.3g}] | -0.18 |" in md
    assert "DFR raises the worst-group accuracy of 1 of 1" in md


def test_worst_group_interval_resamples_each_groups_images_and_averages_trials():
    from spurlab.mitigate.mitigation_summary import worst_group_ci

    def groups(n, accs):  # one row per (trial, group)
        return pd.DataFrame([{"trial": t, "class_index": g, "n": n, "acc": a} for t, per in enumerate(accs)
                             for g, a in enumerate(per)])  # fmt: skip

    few, many = worst_group_ci(groups(10, [[0.2, 0.9]]), 0, "k"), worst_group_ci(groups(1000, [[0.2, 0.9]]), 0, "k")
    assert few[0] <= 0.2 <= few[1] and many[0] <= 0.2 <= many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 3
    # a group that is always right or always wrong has nothing to resample: the worst is fixed
    assert worst_group_ci(groups(8, [[0.0, 1.0]]), 0, "k") == [0.0, 0.0]
    # two trials: the mean of their worst groups (0.0 and 1.0 fixed)
    assert worst_group_ci(groups(8, [[0.0, 1.0], [1.0, 1.0]]), 0, "k") == [0.5, 0.5]
    assert worst_group_ci(groups(10, [[0.2, 0.9]]), 0, "k") == few  # same seed, same numbers
