"""Heatmaps (display only): the jet colour map over the image, uint8."""

import numpy as np
import pytest

from spurlab.discover.heatmap import heatmap


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_heatmap_is_uint8_image(dtype):
    img = np.full((8, 8, 3), 128 if dtype == np.uint8 else 0.5, dtype=dtype)
    nam = np.zeros((8, 8))
    nam[2:4, 2:4] = 1
    out = heatmap(img, nam)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3) and out.max() == 255
    assert not np.array_equal(out[3, 3], out[6, 6])  # the hot region is coloured differently


def test_weight_zero_is_the_image_renormalised():
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0] = (100, 50, 25)
    np.testing.assert_array_equal(heatmap(img, np.ones((4, 4)), weight=0.0)[0, 0], [255, 128, 64])
