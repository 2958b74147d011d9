"""The 95% percentile bootstrap interval of a headline number (docs/methods.md#bootstrap-intervals).

One helper, `bootstrap_ci`, wraps `scipy.stats.bootstrap`: the units (images, image pairs, trials)
are the rows of one or more equal-length arrays, resampled together (a unit keeps its values in
every array: paired), within strata when given (a mean over classes of per-class values resamples
each class's images within the class, so every class keeps its size). The generator is seeded by
the config seed and a key naming the number, so the same seed gives the same bytes, and two numbers
do not share their resamples. Summaries store the interval beside its number as
``<name>_ci: [low, high]`` (`CI_SUFFIX`).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from .errors import SpurlabError

N_RESAMPLES = 1000
CONFIDENCE = 0.95
CI_SUFFIX = "_ci"
DIGITS = 6


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())])


def bootstrap_ci(data: Sequence, statistic: Callable[..., float], seed: int, key: str = "", strata=None,
                 n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                 drop_undefined: bool = False) -> list[float] | None:  # fmt: skip
    """[low, high], the `confidence` percentile bootstrap interval of ``statistic(*data)`` over the
    rows of the arrays in `data` (one row = one unit, resampled with its values in every array).

    `strata` (one label per row): rows are resampled within their stratum. `seed` and `key` seed
    the resampling. None when there is nothing to resample (no rows, or one) or the statistic is
    not finite on some resample (a per-class AUC whose resample lost a label, say): no interval
    rather than a wrong one. `drop_undefined`: the percentiles are taken over the resamples where the
    statistic is finite (a correlation over a few classes or methods, undefined on the resamples
    that draw one value only), None when fewer than half are.
    """
    arrays = [np.asarray(a) for a in data]
    n = len(arrays[0]) if arrays else 0
    if any(len(a) != n for a in arrays):
        raise SpurlabError(f"bootstrap '{key}': arrays of different lengths {[len(a) for a in arrays]}")
    if n < 2:
        return None
    fixed, groups = _strata(n, strata)
    if not groups:
        return None

    def stat(*idx):
        rows = np.sort(np.concatenate([fixed, *idx]))
        return statistic(*(a[rows] for a in arrays))

    return _percentile(groups, stat, seed, key, (n_resamples, confidence, drop_undefined))


def _strata(n: int, strata) -> tuple[np.ndarray, tuple]:
    """(the rows of one-row strata, which stay fixed; the row indices of every other stratum)."""
    labels = np.zeros(n, dtype=np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    groups = [np.flatnonzero(labels == s) for s in range(labels.max() + 1)] if n else []
    # a stratum of one row resamples to itself: scipy wants two or more, so it stays fixed
    fixed = np.concatenate([g for g in groups if len(g) == 1] or [np.zeros(0, np.int64)])
    return fixed, tuple(g for g in groups if len(g) > 1)


def _percentile(samples: tuple, stat: Callable[..., float], seed: int, key: str, how: tuple) -> list[float] | None:
    """scipy's percentile bootstrap of `stat` over the index arrays `samples` (each resampled on
    its own); `how` = (n_resamples, confidence, drop_undefined) as in `bootstrap_ci`."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    n_resamples, confidence, drop_undefined = how
    with warnings.catch_warnings():  # an undefined statistic: None below, not scipy's warning
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(samples, stat, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                        vectorized=False, paired=False, random_state=_rng(seed, key))  # fmt: skip
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    dist = np.asarray(res.bootstrap_distribution, float)
    if drop_undefined and np.isfinite(dist).mean() >= 0.5:
        alpha = (1 - confidence) / 2
        low, high = (float(x) for x in np.nanpercentile(dist, [100 * alpha, 100 * (1 - alpha)]))
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [round(low, DIGITS), round(high, DIGITS)]


def trials_bootstrap_ci(per_trial, statistic: Callable[..., float], seed: int, key: str = "", strata=None,
                        shared: Sequence = ()) -> list[float] | None:  # fmt: skip
    """[low, high], the 95% percentile bootstrap interval of the mean over trials of
    ``statistic(per_trial[t], *shared)``: `per_trial` (trials x units) holds every unit's value in
    each trial (the same units, an image scored by every trial's head), `shared` arrays (one value
    per unit) are the same in every trial. Each resample draws the units (within `strata`, as
    `bootstrap_ci`; one draw serves every trial, so a unit keeps its values in all of them) and,
    with two or more trials, the trials. None when there is nothing to resample."""
    values = np.atleast_2d(np.asarray(per_trial))
    arrays = [np.asarray(a) for a in shared]
    n_trials, n = values.shape
    if any(len(a) != n for a in arrays):
        raise SpurlabError(f"bootstrap '{key}': shared arrays of lengths {[len(a) for a in arrays]}, {n} units")
    fixed, groups = _strata(n, strata) if n > 1 else (np.arange(n), ())
    trials = (np.arange(n_trials),) if n_trials > 1 else ()
    if not n or not (groups or trials):
        return None

    def stat(*idx):
        rows = np.sort(np.concatenate([fixed, *idx[: len(groups)]]))
        picked = idx[len(groups)] if trials else [0]
        parts = [a[rows] for a in arrays]
        return float(np.mean([statistic(values[t, rows], *parts) for t in picked]))

    return _percentile(groups + trials, stat, seed, key, (N_RESAMPLES, CONFIDENCE, False))


def mean_ci(values, seed: int, key: str = "", strata=None) -> list[float] | None:
    """The interval of the mean of `values` (or, with `strata`, of the mean over strata of the
    per-stratum means: each stratum's values resampled within it)."""
    values = np.asarray(values, float)
    if strata is None:
        return bootstrap_ci([values], np.mean, seed, key)
    labels = np.unique(np.asarray(strata), return_inverse=True)[1]
    n = int(labels.max()) + 1 if len(labels) else 0

    def mean_of_means(v, s):  # every stratum keeps its size, so each has rows in every resample
        return float(np.mean(np.bincount(s, v, n) / np.bincount(s, minlength=n)))

    return bootstrap_ci([values, labels], mean_of_means, seed, key, strata=labels)
