"""Bounded-memory streaming of the analysis stages (issue #10, point 4; bench/analysis_scale.py
measures the memory): streaming in blocks must not change any result."""

import numpy as np

from spurlab.discover.importance import class_feature_means
from spurlab.measure.spuriosity import _own_class_columns, class_statistics, spuriosity


class _Cache:
    """What `_own_class_columns` reads of a FeatureCache: `f["features"].dtype` and `blocks()`."""

    def __init__(self, x: np.ndarray, rows: int):
        self.x, self.rows = x, rows
        self.f = {"features": x}

    def blocks(self, name: str, rows: int = 65536):
        assert name == "features"
        for s in range(0, len(self.x), self.rows):  # small blocks: several per run
            yield s, self.x[s : s + self.rows]


def test_own_class_columns_give_the_dense_spuriosity():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((53, 12)).astype(np.float16)
    labels = rng.integers(-1, 6, 53)  # -1: no class; 1, 3, 5: classes without spurious features
    spurious = {0: [3, 1], 2: [5], 4: [0, 2, 7, 11]}
    own = _own_class_columns(_Cache(x, rows=7), labels, spurious)
    assert own.shape == (53, 4) and own.dtype == np.float16
    for c, feats in spurious.items():
        rows = labels == c
        np.testing.assert_array_equal(own[rows][:, : len(feats)], x[rows][:, feats])
    local = {c: list(range(len(f))) for c, f in spurious.items()}
    got = spuriosity(own, labels, local, class_statistics(own, labels, local))
    want = spuriosity(x, labels, spurious, class_statistics(x, labels, spurious))
    np.testing.assert_array_equal(np.isnan(got), ~np.isin(labels, list(spurious)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_class_means_do_not_depend_on_the_block_size():
    rng = np.random.default_rng(1)
    x = rng.random((101, 9)).astype(np.float16)
    preds, labels = rng.integers(0, 5, 101), rng.integers(0, 5, 101)

    def blocks(rows):
        return ((x[s : s + rows], preds[s : s + rows], labels[s : s + rows]) for s in range(0, 101, rows))

    for grouping in ("prediction", "label", "correct"):
        whole, n_whole = class_feature_means(blocks(101), 5, grouping)
        small, n_small = class_feature_means(blocks(8), 5, grouping)
        np.testing.assert_array_equal(n_small, n_whole)
        np.testing.assert_allclose(small, whole, rtol=1e-12)
        g = {"prediction": preds, "label": labels, "correct": np.where(preds == labels, labels, -1)}[grouping]
        np.testing.assert_allclose(whole[2], x[g == 2].astype(np.float64).mean(0), rtol=1e-12)
