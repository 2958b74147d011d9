"""BAM metrics (Yang & Kim 2019, sec. 4; docs/methods.md#bam-metrics) on region means g_c.

- G_c(f, X_corr) = mean of g_c over inputs both models classify correctly (sec. 4.1).
- MCS = G_c(f_1) - G_c(f_2) on object regions (sec. 4.2, eq. 1); its baseline uses random regions
  (app. G). The k-series MCS pairs each f_k with f_{k=1.0}; Pearson rho with the accuracy drop.
- IDR = fraction of pairs with g_c(f, x_cf) < g_c(f, x_-cf) (sec. 4.3, eq. 2; baseline 50%).
- IIR = fraction with |g_c(f, x + delta) - g_c(f, x)| / g_c(f, x) < t, t = 0.1 (sec. 4.4, eq. 3).

Spread: the standard deviation of the metric over disjoint trials of `trial_size` images drawn by a
seeded permutation (the paper: 10 trials of 100 images); None with fewer than two trials.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import SpurlabError


def mcs(g1: np.ndarray, g2: np.ndarray) -> float:
    """G_c(f_1) - G_c(f_2) over the same inputs (row-aligned g_c arrays)."""
    g1, g2 = _pair(g1, g2)
    return float(np.mean(g1) - np.mean(g2)) if len(g1) else float("nan")


def idr(g_cf: np.ndarray, g_nocf: np.ndarray) -> float:
    """Fraction of pairs where the region is attributed less with the common feature than without."""
    g_cf, g_nocf = _pair(g_cf, g_nocf)
    return float(np.mean(g_cf < g_nocf)) if len(g_cf) else float("nan")


def iir(g_x: np.ndarray, g_xd: np.ndarray, t: float = 0.1) -> float:
    """Fraction of inputs whose region attribution changes by less than t relative to g_c(x).

    Where g_c(x) = 0 the relative change is 0 if g_c(x + delta) is 0 too, else infinite.
    """
    g_x, g_xd = _pair(g_x, g_xd)
    if not len(g_x):
        return float("nan")
    diff = np.abs(g_xd - g_x)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(g_x > 0, diff / np.where(g_x > 0, g_x, 1), np.where(diff > 0, np.inf, 0.0))
    return float(np.mean(rel < t))


def _pair(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise SpurlabError(f"BAM metric: paired arrays differ in shape {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def trial_sd(metric: Callable[..., float], arrays: tuple[np.ndarray, ...], trial_size: int,
             rng: np.random.Generator) -> float | None:  # fmt: skip
    """SD of `metric(*arrays[trial])` over disjoint trials of `trial_size` rows (seeded order)."""
    n = len(arrays[0])
    k = n // int(trial_size)
    if k < 2:
        return None
    order = rng.permutation(n)
    vals = [metric(*(a[order[i * trial_size : (i + 1) * trial_size]] for a in arrays)) for i in range(k)]
    return float(np.std(vals, ddof=1))


def pearson(x, y) -> float | None:
    """Pearson r (scipy.stats.pearsonr); None when undefined (fewer than 3 points or a constant)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(stats.pearsonr(x, y).statistic)
