"""The feature cache's torch-free reader helpers (spurlab.data.feature_cache): column hashes that
do not depend on the stored width, and rows refused unless finite, naming the row. The cache
itself (writer and verifying reader) is exercised end to end by tests/test_features.py, and that
it loads without torch by tests/test_light_commands.py."""

import h5py
import numpy as np
import pytest

from spurlab.data.feature_cache import FiniteRows, check_finite, column_sha256
from spurlab.errors import SpurlabError


def test_column_hash_ignores_the_stored_width_but_not_order_or_content():
    labels = [3, 1, 2]
    h = column_sha256(np.array(labels, np.int64))
    assert column_sha256(np.array(labels, np.int16)) == h == column_sha256(labels)
    assert column_sha256(np.array([1, 3, 2])) != h and column_sha256(np.array([3, 1])) != h
    ids = column_sha256(np.array([b"a", b"bc"]))
    assert column_sha256(np.array(["a", "bc"])) == ids != column_sha256(np.array([b"ab", b"c"]))


def test_non_finite_rows_are_refused_naming_the_first_bad_row(tmp_path):
    arr = np.ones((6, 2), np.float32)
    arr[4, 1] = np.nan
    arr[5, 0] = np.inf
    assert check_finite(arr[:4], "feats") is not None
    with pytest.raises(SpurlabError, match=r"^feats: row 14 is not finite \(NaN or Inf\)$"):
        check_finite(arr, "feats", start=10)
    ints = np.array([1, 2])
    assert check_finite(ints, "labels") is ints  # integers cannot be NaN
    with h5py.File(tmp_path / "f.h5", "w") as f:
        rows = FiniteRows(f.create_dataset("x", data=arr), "f.h5:x")
        assert len(rows) == 6 and rows.shape == (6, 2) and rows[0:4].sum() == 8
        with pytest.raises(SpurlabError, match="f.h5:x: row 4 is not finite"):
            rows[2:6]
