"""Noise corruption (docs/methods.md#noise-corruption): oracles, seeding, eq. 2, and the summary's comparisons."""

import numpy as np
import pandas as pd
import pytest
import torch

from spurlab.measure.noise import _rows, accuracy_under_noise, corrupt, image_noise
from spurlab.measure.salient_summary import classes_with_large_gap, drake_comparison, drake_onset, drop_ci, l2_matched
from spurlab.models.factory import build_classifier
from spurlab.stats import mean_ci


def test_sigma_zero_or_zero_mask_changes_nothing():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    z = torch.randn(2, 3, 8, 8)
    assert torch.equal(corrupt(x.clone(), torch.ones(2, 8, 8), 0.0, z), x)
    assert torch.equal(corrupt(x.clone(), torch.zeros(2, 8, 8), 2.0, z), x)
    m = torch.zeros(2, 8, 8)
    m[:, :4] = 1
    out = corrupt(x.clone(), m, 0.5, z)
    assert torch.equal(out[..., 4:, :], x[..., 4:, :]) and not torch.equal(out[..., :4, :], x[..., :4, :])
    assert out.min() >= 0 and out.max() <= 1


def test_noise_depends_only_on_seed_and_row():
    a = image_noise(3, [5, 9], (3, 4, 4))
    b = image_noise(3, [9], (3, 4, 4))
    np.testing.assert_array_equal(a[1], b[0])
    assert not np.array_equal(image_noise(4, [5], (3, 4, 4))[0], a[0])
    assert abs(image_noise(0, range(200), (3, 8, 8)).std() - 1) < 0.02


def test_accuracy_under_noise_is_seeded_and_sigma_zero_is_clean():
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 16, {"width": 4}).eval()
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        labels = model.logits(x).argmax(1).numpy()
    masks = np.ones((12, 16, 16), np.float32)
    z = image_noise(0, range(12), (3, 16, 16))
    c1, l2 = accuracy_under_noise(model, images, labels, masks, z, [0, 0.5, 5.0], torch.device("cpu"), batch_size=5)
    c2, _ = accuracy_under_noise(model, images, labels, masks, z, [0, 0.5, 5.0], torch.device("cpu"), batch_size=12)
    np.testing.assert_array_equal(c1, c2)
    assert c1[0].all() and (l2[0] == 0).all()  # labels are the clean predictions
    assert (l2[1] > 0).all() and (l2[2] > l2[1]).all()


def _table():
    """Two classes; class 0 relies on its spurious feature (drop 0.6) more than its core one (0.1)."""
    rows = []
    for i in (0, 1):
        for measure, label, acc in (("core_acc", "spurious", [1.0, 0.4]), ("spurious_acc", "core", [1.0, 0.9])):
            if i == 1:
                acc = acc[::-1] if measure == "core_acc" else [1.0, 0.2]
            for s, a in zip((0.0, 0.25), acc):
                rows.append(dict(model="m", class_index=i, feature_index=-1, label=label, measure=measure,
                                 sigma=s, acc=a, l2_mean=0.0))  # fmt: skip
    # per-feature rows for class 0: spurious feature 5 (small mask), core feature 6 (large mask)
    for j, label, accs, l2s in ((5, "spurious", {0.0: 1.0, 0.25: 0.4, 0.3: 0.3, 0.45: 0.2}, {0.0: 0, 0.25: 1.0, 0.3: 1.2, 0.45: 1.8}),
                                (6, "core", {0.0: 1.0, 0.25: 0.9, 0.3: 0.85, 0.45: 0.8}, {0.0: 0, 0.25: 2.0, 0.3: 2.4, 0.45: 3.6})):  # fmt: skip
        for s in accs:
            rows.append(dict(model="m", class_index=0, feature_index=j, label=label, measure="feature", sigma=s,
                             acc=accs[s], l2_mean=l2s[s]))  # fmt: skip
    return pd.DataFrame(rows)


def test_drake_comparison_and_large_gap_classes():
    t = _table()
    d = drake_comparison(t, [0])["0.25"]
    assert d["drop_spurious_noise"] == pytest.approx(0.6) and d["drop_core_noise"] == pytest.approx(0.1)
    assert d["spurious_exceeds_core"] and d["n_classes"] == 1
    both = drake_comparison(t, [0, 1])["0.25"]
    assert both["classes_spurious_exceeds_core"] == 1 and both["drop_core_noise"] == pytest.approx((0.1 + 0.8) / 2)
    assert classes_with_large_gap(t) == [0]


def test_l2_matched_raises_the_smaller_perturbation():
    r = l2_matched(_table())
    # spurious feature 5 has the smaller L2 (1.0 < 2.0): the smallest grid sigma reaching 2.0 is none
    # (1.8 at 0.45), so the pair is unmatched; lower the core L2 and it matches at 0.45
    assert r == {"n_pairs": 0, "unmatched": 1}
    t = _table()
    t.loc[(t["feature_index"] == 6) & (t["sigma"] == 0.25), "l2_mean"] = 1.7
    r = l2_matched(t)
    assert r["n_pairs"] == 1 and r["mean_drop_spurious"] == pytest.approx(0.8)  # spurious at sigma 0.45
    assert r["mean_drop_core"] == pytest.approx(0.1) and r["fraction_spurious_exceeds_core"] == 1.0


def test_rows_count_the_images_lost_and_gained_against_the_clean_sigma():
    correct = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 1]], dtype=bool)  # sigma 0, then 0.5
    head = {
        "model": "m",
        "class_index": 0,
        "class_name": "c",
        "feature": -1,
        "label": "spurious",
        "measure": "core_acc",
    }
    clean, noisy = _rows(head, [0.0, 0.5], correct, np.zeros((2, 5)))
    assert (clean["n_lost"], clean["n_gained"]) == (0, 0)
    assert (noisy["n_lost"], noisy["n_gained"]) == (1, 1) and noisy["acc"] == clean["acc"]
    assert next(_rows(head, [0.5], correct[1:], np.zeros((1, 5))))["n_lost"] == -1  # no clean sigma swept


def test_drake_drop_intervals_resample_images_within_class():
    rows = pd.DataFrame({"model": "m", "class_index": [0, 1], "n": [10, 20], "n_lost": [4, 2], "n_gained": [1, 0]})
    ci = drop_ci(rows, 0, "k")
    drops = np.r_[np.ones(4), -1, np.zeros(5), np.ones(2), np.zeros(18)]
    assert ci == mean_ci(drops, 0, "k", strata=np.r_[np.zeros(10), np.ones(20)])
    assert ci[0] <= (0.3 + 0.1) / 2 <= ci[1] and ci == drop_ci(rows, 0, "k")
    assert drop_ci(rows.drop(columns="n_lost"), 0, "k") is None  # a table without the paired counts
    t = _table()
    assert drake_comparison(t, [0])["0.25"]["drop_core_noise_ci"] is None
    counted = t.assign(n=10, n_lost=0, n_gained=0)
    noisy = counted["sigma"].eq(0.25) & counted["class_index"].eq(0)
    counted.loc[noisy & counted["measure"].eq("core_acc"), "n_lost"] = 6  # clean 1.0, noisy 0.4 of 10 images
    counted.loc[noisy & counted["measure"].eq("spurious_acc"), "n_lost"] = 1  # clean 1.0, noisy 0.9
    d = drake_comparison(counted, [0], seed=0)["0.25"]
    for key, value in (("drop_spurious_noise", 0.6), ("drop_core_noise", 0.1)):
        low, high = d[f"{key}_ci"]
        assert d[key] == pytest.approx(value) and low < d[key] < high


def test_drake_onset_is_the_first_sigma_where_either_drop_is_measurably_positive():
    """A model that small noise breaks: at 0.05 only spurious-region noise costs accuracy, from
    0.25 on both drops saturate and core-region noise, over the larger region, costs more. The
    onset is 0.05, where the comparison still tells the regions apart; an interval reaching 0
    does not count as a cost, a point estimate does where the table has no interval."""
    entry = lambda s, c, s_ci=None, c_ci=None: {  # noqa: E731
        "drop_spurious_noise": s, "drop_spurious_noise_ci": s_ci, "drop_core_noise": c, "drop_core_noise_ci": c_ci,
        "spurious_exceeds_core": s > c}  # fmt: skip
    fragile = {"0.25": entry(0.77, 0.8, [0.69, 0.84], [0.75, 0.86]), "0.05": entry(0.4, 0.12, [0.3, 0.5], [0.0, 0.25]),
               "0.5": entry(0.83, 0.83, [0.8, 0.9], [0.8, 0.9])}  # fmt: skip
    onset = drake_onset(fragile)
    assert onset["sigma"] == 0.05 and onset["spurious_exceeds_core"] and onset["drop_spurious_noise"] == 0.4
    robust = {"0.05": entry(0.0, 0.01, [0.0, 0.0], [-0.02, 0.04]), "0.25": entry(0.16, 0.14, [0.11, 0.19], [0.08, 0.2])}
    assert drake_onset(robust)["sigma"] == 0.25
    assert drake_onset({"0.1": entry(0.0, 0.02), "0.5": entry(0.3, 0.1)})["sigma"] == 0.1  # no intervals
    assert drake_onset({"0.1": entry(0.0, 0.0, [0.0, 0.0], [-0.01, 0.02])}) is None
