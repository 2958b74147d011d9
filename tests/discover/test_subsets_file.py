"""The torch-free half of D(i, j) (spurlab.discover.subsets_file): subset sizes, where a map's mass
lies, the consolidated masks of eq. 2."""

import numpy as np
import pytest

from spurlab.discover.subsets_file import (
    STAT_COLUMNS,
    consolidated_masks,
    object_margin_px,
    pair_region_stats,
    region_masks,
    region_masses,
    subset_size,
)


def test_subset_size_is_the_fraction_within_its_bounds():
    assert subset_size(1300, 0.05, 1, 65) == 65  # the paper's 65 of ~1300
    assert subset_size(1000, 0.05, 1, 65) == 50
    assert subset_size(10, 0.05, 3, 65) == 3  # at least min_images
    assert subset_size(2, 0.05, 3, 65) == 2  # never more than the class has
    assert subset_size(10000, 0.5, 1, 65) == 65  # capped


def test_region_statistics():
    nam = np.zeros((1, 4, 4))
    nam[0, 0, :2] = 1.0  # hot on two pixels of the object
    nam[0, 3, :] = 0.25  # a cool tail elsewhere
    obj = np.zeros((1, 4, 4), bool)
    obj[0, 0] = True
    stats = region_masses(nam, {"object": obj, "rest": ~obj})
    assert stats["object"] == pytest.approx((2 / 3, 0.25, 1.0))
    assert stats["rest"] == pytest.approx((1 / 3, 0.75, 0.0))
    zero = region_masses(np.zeros((1, 4, 4)), {"object": obj})
    assert zero["object"] == (0.0, 0.25, 0.0)  # no NaN from an all-zero map


def test_margin_in_pixels_is_cells_of_the_feature_map():
    assert object_margin_px(64, 8, 0.5) == 4  # the default: half a cell of an 8x8 map at 64 px
    assert object_margin_px(224, 7, 0.5) == 16
    assert object_margin_px(64, 8, 0.0) == 0


def test_region_masks_grow_the_object_by_the_margin_only():
    obj = np.zeros((1, 9, 9), bool)
    obj[0, 4, 4] = True
    cue = np.zeros_like(obj)
    cue[0, 0, :] = True
    m = region_masks(obj, cue, margin_px=2)
    np.testing.assert_array_equal(m["object"], obj)  # the truth's regions keep the mask itself
    np.testing.assert_array_equal(m["rest"], ~(obj | cue))
    expected = np.zeros_like(obj)
    expected[0, 2:7, 2:7] = True  # a square of side 2 * 2 + 1: a feature-map cell is square
    np.testing.assert_array_equal(m["object_near"], expected)
    np.testing.assert_array_equal(region_masks(obj, cue)["object_near"], obj)


def test_hot_share_near_the_object_counts_a_blob_spilling_past_a_small_object():
    """An upsampled map centred on a 1-pixel object: its hot 3x3 blob lies 1/9 on the object, all
    of it within a margin of one pixel, and none of it on a far cue."""
    obj = np.zeros((1, 9, 9), bool)
    obj[0, 4, 4] = True
    cue = np.zeros_like(obj)
    cue[0, 0, 0] = True
    nam = np.zeros((1, 9, 9))
    nam[0, 3:6, 3:6] = 1.0
    exact = pair_region_stats(nam, region_masks(obj, cue))
    near = pair_region_stats(nam, region_masks(obj, cue, margin_px=1))
    assert exact["hot_object"] == pytest.approx(1 / 9) and exact["hot_object_near"] == pytest.approx(1 / 9)
    assert near["hot_object_near"] == 1.0
    # everything else is measured on the mask itself, whatever the margin
    assert {k: v for k, v in near.items() if k != "hot_object_near"} == {
        k: v for k, v in exact.items() if k != "hot_object_near"
    }


def test_pair_statistics_without_masks_are_nan():
    stats = pair_region_stats(np.ones((2, 4, 4)), None)
    assert list(stats) == list(STAT_COLUMNS) and all(np.isnan(v) for v in stats.values())


def test_consolidated_masks_are_the_pixelwise_max_over_the_images_sets():
    m1 = np.zeros((2, 2, 2), np.float32)
    m1[0, 0, 0], m1[1, 1, 1] = 1.0, 0.5
    m2 = np.zeros((2, 2, 2), np.float32)
    m2[0, 0, 0], m2[0, 1, 1], m2[1, 0, 1] = 0.3, 0.7, 0.9
    members = {7: (np.array([10, 11]), m1), 8: (np.array([12, 10]), m2)}
    rows, masks = consolidated_masks(members, [7, 8])
    np.testing.assert_array_equal(rows, [10, 11, 12])
    np.testing.assert_array_equal(masks[0], np.maximum(m1[0], m2[1]))  # row 10 is in both sets
    np.testing.assert_array_equal(masks[1], m1[1])
    np.testing.assert_array_equal(masks[2], m2[0])
    rows, _ = consolidated_masks(members, [])
    assert len(rows) == 0
