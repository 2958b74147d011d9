"""BAM metrics (docs/methods.md#bam-metrics): oracles and invariants of MCS, IDR, IIR, trials and rho."""

import numpy as np
import pytest
import torch

from spurlab.attribution import region_means
from spurlab.attribution.regions import outside, random_masks
from spurlab.measure.bam_metrics import idr, iir, mcs, pearson, trial_sd


def _disk_masks(rng, n, size=24):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(6, size - 6, (2, n))
    r = rng.uniform(3, 6, n)
    return ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2 < r[:, None, None] ** 2).astype(np.uint8)


def test_mcs_of_a_model_against_itself_is_zero():
    rng = np.random.default_rng(0)
    g = rng.random(50)
    assert mcs(g, g) == 0.0
    assert mcs(g + 0.2, g) == pytest.approx(0.2)


def test_planted_contrast_is_found_and_the_random_region_baseline_is_near_zero():
    """Maps of 'f_o' light up the object, maps of 'f_s' do not; both share the same background
    distribution. MCS on objects ~ the planted 0.5; with random regions ~ 0."""
    rng = np.random.default_rng(1)
    n = 400
    obj = _disk_masks(rng, n)
    noise_o, noise_s = rng.random((2, n, 24, 24)) * 0.5
    e_o = torch.from_numpy(np.clip(noise_o + 0.5 * obj, 0, 1))
    e_s = torch.from_numpy(noise_s)
    rand = random_masks(obj, rng)
    planted = mcs(region_means(e_o, obj), region_means(e_s, obj))
    baseline = mcs(region_means(e_o, rand), region_means(e_s, rand))
    assert planted == pytest.approx(0.5, abs=0.02)
    # a random region overlaps the image's object by chance only: the baseline is the planted
    # contrast times that overlap (BAM objects are large, so the baseline is not 0 for them)
    overlap = (rand * obj).sum() / rand.sum()
    assert abs(baseline - 0.5 * overlap) < 0.03
    # where neither model's maps follow the objects, the random-region MCS is ~0
    null = mcs(region_means(torch.from_numpy(noise_o), rand), region_means(torch.from_numpy(noise_s), rand))
    assert abs(null) < 0.01


def test_idr_and_iir_lie_in_unit_interval_and_match_oracles():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.random(30), rng.random(30)
        assert 0 <= idr(a, b) <= 1 and 0 <= iir(a, b) <= 1
    assert idr(np.array([0.1, 0.5, 0.3]), np.array([0.2, 0.4, 0.9])) == pytest.approx(2 / 3)
    # IIR: relative change |0.105-0.1|/0.1 = 0.05 < 0.1 counts, 0.2 vs 0.1 does not; 0 -> 0 counts
    assert iir(np.array([0.1, 0.1, 0.0, 0.0]), np.array([0.105, 0.2, 0.0, 0.3]), t=0.1) == pytest.approx(0.5)
    # IDR of unrelated region means is a coin flip: the paper's 50% baseline
    big = rng.random((2, 20000))
    assert idr(big[0], big[1]) == pytest.approx(0.5, abs=0.02)


def test_nan_rows_are_dropped_in_pairs():
    assert mcs(np.array([1.0, np.nan]), np.array([0.5, 0.0])) == pytest.approx(0.5)


def test_trial_sd_needs_two_trials_and_is_seeded():
    x = np.arange(100, dtype=float)
    assert trial_sd(lambda a: float(a.mean()), (x,), 60, np.random.default_rng(0)) is None
    a = trial_sd(lambda a: float(a.mean()), (x,), 25, np.random.default_rng(0))
    assert a == trial_sd(lambda a: float(a.mean()), (x,), 25, np.random.default_rng(0)) and a > 0
    assert trial_sd(lambda a: float(a.mean()), (np.ones(100),), 25, np.random.default_rng(0)) == 0.0


def test_pearson_is_undefined_for_constants_and_short_series():
    assert pearson([1, 2], [3, 4]) is None
    assert pearson([1, 2, 3], [5, 5, 5]) is None
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8.5]) == pytest.approx(0.998, abs=0.002)


def test_idr_baseline_regions_outside_the_object_are_a_coin_flip_where_overlapping_ones_are_not():
    """Planted maps of f_s: the object's region is attributed less with the object than with the
    scene it covers (IDR 1 on the object); elsewhere both inputs' maps are independent noise. Random
    regions that overlap the object inherit part of its IDR; outside the object they give ~50%."""
    rng = np.random.default_rng(3)
    n = 2000
    obj = _disk_masks(rng, n)
    e_cf = torch.from_numpy(rng.random((n, 24, 24)) * (1 - 0.9 * obj))
    e_nocf = torch.from_numpy(rng.random((n, 24, 24)) * (1 - obj) + obj)
    rand = random_masks(obj, rng)
    away = outside(rand, obj)
    assert not (away * obj).any() and ((away == 1) <= (rand == 1)).all()
    assert idr(region_means(e_cf, obj), region_means(e_nocf, obj)) == 1.0
    assert idr(region_means(e_cf, rand), region_means(e_nocf, rand)) > 0.6
    # empty regions (the random one wholly inside the object) give NaN and are dropped
    assert idr(region_means(e_cf, away), region_means(e_nocf, away)) == pytest.approx(0.5, abs=0.04)
