"""spurlab.stats: the percentile bootstrap interval of a headline number (docs/methods.md#bootstrap-intervals)."""

import zlib

import numpy as np
import pytest
from scipy.stats import DegenerateDataWarning, bootstrap

from spurlab.errors import SpurlabError
from spurlab.stats import N_RESAMPLES, bootstrap_ci, mean_ci, trials_bootstrap_ci


def sample(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.3, 1.0, n)


def test_agrees_with_scipy_percentile_bootstrap_on_a_known_sample():
    x = sample(40)
    ci = bootstrap_ci([x], np.mean, seed=7, key="k")
    ref = bootstrap((x,), np.mean, n_resamples=N_RESAMPLES, confidence_level=0.95, method="percentile",
                    random_state=np.random.default_rng([7, zlib.crc32(b"k")]))  # fmt: skip
    assert ci == pytest.approx([ref.confidence_interval.low, ref.confidence_interval.high], abs=1e-6)
    # and about the normal-theory interval of a mean (1.96 SEM either side)
    sem = x.std(ddof=1) / np.sqrt(len(x))
    assert ci[0] == pytest.approx(x.mean() - 1.96 * sem, abs=0.4 * sem)
    assert ci[1] == pytest.approx(x.mean() + 1.96 * sem, abs=0.4 * sem)


def test_interval_contains_the_statistic_and_shrinks_with_n():
    small, large = sample(25), sample(2500)
    a, b = mean_ci(small, 0, "a"), mean_ci(large, 0, "a")
    assert a[0] < small.mean() < a[1] and b[0] < large.mean() < b[1]
    assert (b[1] - b[0]) < (a[1] - a[0]) / 5  # width ~ 1/sqrt(n): 10x the SEM ratio of sqrt(100)


def test_same_seed_same_numbers_other_seed_or_key_other_numbers():
    x = sample(30)
    assert mean_ci(x, 3, "k") == mean_ci(x, 3, "k")
    assert mean_ci(x, 3, "k") != mean_ci(x, 4, "k")
    assert mean_ci(x, 3, "k") != mean_ci(x, 3, "other")


def test_strata_keep_their_sizes_and_rows_keep_their_values_in_every_array():
    strata = np.array([0] * 3 + [1] * 7)
    # every resample draws 3 rows of stratum 0: the count is constant, so is the interval
    assert bootstrap_ci([strata], lambda s: float((s == 0).sum()), 0, strata=strata) == [3.0, 3.0]
    # paired: a row's values travel together, so a == b on every resample
    a = sample(20)
    assert bootstrap_ci([a, a.copy()], lambda u, v: float(np.abs(u - v).max()), 0) == [0.0, 0.0]
    # a stratum of one row stays in every resample
    one = np.array([0, 1, 1, 1])
    assert bootstrap_ci([one], lambda s: float((s == 0).sum()), 0, strata=one) == [1.0, 1.0]


def test_stratified_mean_is_the_mean_of_class_means():
    v = np.r_[np.zeros(50), np.ones(5)]
    cls = np.r_[np.zeros(50), np.ones(5)]
    ci = mean_ci(v, 0, "m", strata=cls)
    assert ci == [0.5, 0.5]  # each class's mean is fixed (constant values), the pooled mean 5/55 is not it


def test_nothing_to_resample_or_an_undefined_statistic_gives_none_and_bad_input_one_line():
    assert mean_ci([0.5], 0) is None and mean_ci([], 0) is None
    assert bootstrap_ci([sample(10)], lambda x: float("nan"), 0) is None
    with pytest.raises(SpurlabError, match="different lengths"):
        bootstrap_ci([np.zeros(3), np.zeros(4)], lambda a, b: 0.0, 0, key="x")


def test_drop_undefined_takes_the_percentiles_over_the_defined_resamples():
    x = np.array([0.0, 1.0, 2.0])

    def spread_or_undefined(v):  # undefined on the resamples that draw one distinct value
        return float(v.mean()) if np.ptp(v) > 0 else float("nan")

    assert bootstrap_ci([x], spread_or_undefined, 0, "k") is None  # some resample draws one value
    ci = bootstrap_ci([x], spread_or_undefined, 0, "k", drop_undefined=True)
    with pytest.warns(DegenerateDataWarning):  # scipy's interval is NaN: some resamples are undefined
        ref = bootstrap((x,), spread_or_undefined, n_resamples=N_RESAMPLES, method="percentile", vectorized=False,
                        random_state=np.random.default_rng([0, zlib.crc32(b"k")]))  # fmt: skip
    dist = ref.bootstrap_distribution
    assert ci == pytest.approx(list(np.nanpercentile(dist, [2.5, 97.5])), abs=1e-6)
    assert ci[0] <= x.mean() <= ci[1]
    # fewer than half of the resamples defined: no interval
    assert bootstrap_ci([x], lambda v: float("nan") if v[0] != 2.0 else 1.0, 0, drop_undefined=True) is None


def test_trials_interval_resamples_images_within_trials_and_the_trials():
    hits = (np.random.default_rng(2).random(60) < 0.6).astype(float)
    same = np.stack([hits, hits, hits])  # three identical trials: only the images vary
    ci = trials_bootstrap_ci(same, np.mean, 0, "k")
    assert ci[0] < hits.mean() < ci[1] and ci[1] - ci[0] > 0.1  # not the zero width of resampling trials only
    assert ci == trials_bootstrap_ci(same, np.mean, 0, "k") != trials_bootstrap_ci(same, np.mean, 1, "k")
    assert trials_bootstrap_ci(np.ones((3, 60)), np.mean, 0, "k") == [1.0, 1.0]  # every image agrees
    # trials that differ widen it; one image and one trial: nothing to resample
    rng = np.random.default_rng(3)
    varied = np.stack([(rng.random(60) < p).astype(float) for p in (0.2, 0.6, 0.9)])
    wide = trials_bootstrap_ci(varied, np.mean, 0, "k")
    assert wide[0] < varied.mean() < wide[1] and wide[1] - wide[0] > ci[1] - ci[0]
    assert trials_bootstrap_ci(np.ones((1, 1)), np.mean, 0, "k") is None
    assert trials_bootstrap_ci(np.array([[0.0], [1.0]]), np.mean, 0, "k") == [0.0, 1.0]  # trials only


def test_trials_interval_keeps_every_stratum_its_size_and_passes_shared_columns():
    cell = np.repeat([0, 1], 10)
    hits = np.stack([np.r_[np.zeros(10), np.ones(10)]] * 2)  # stratum 0 always wrong, 1 always right
    gap = trials_bootstrap_ci(hits, lambda h, c: h[c == 1].mean() - h[c == 0].mean(), 0, "k", strata=cell,
                              shared=[cell])  # fmt: skip
    assert gap == [1.0, 1.0]  # unstratified resamples would move it
    with pytest.raises(SpurlabError, match="shared arrays"):
        trials_bootstrap_ci(hits, np.mean, 0, "k", shared=[cell[:5]])
