"""Region means of normalised maps and the random-region baselines (Yang & Kim 2019, sec. 4.1 and
app. G; docs/methods.md#bam-metrics)."""

import numpy as np
import pytest
import torch

from spurlab.attribution.regions import outside, random_masks, region_means


def test_region_means_oracle_and_empty_region():
    e = torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)
    g = region_means(e, masks)
    assert g[0] == pytest.approx(0.5) and np.isnan(g[1])


def test_random_masks_never_give_an_image_its_own_region():
    masks = np.arange(7)[:, None, None] * np.ones((7, 2, 2), dtype=np.int64)
    for seed in range(5):
        r = random_masks(masks, np.random.default_rng(seed))
        assert (r[:, 0, 0] != np.arange(7)).all()


def test_region_means_are_the_masked_average_in_float64():
    rng = np.random.default_rng(0)
    e = torch.rand(5, 6, 6, generator=torch.Generator().manual_seed(0))
    masks = rng.integers(0, 2, (5, 6, 6))
    masks[:, 0, 0] = 1  # no empty region
    want = [(e[i].double().numpy() * masks[i]).sum() / masks[i].sum() for i in range(5)]
    g = region_means(e, torch.as_tensor(masks))
    assert g.dtype == np.float64 and g == pytest.approx(want, rel=1e-12)


def test_random_masks_are_other_images_regions_seeded_and_a_single_image_keeps_its_own():
    masks = np.arange(6)[:, None, None] * np.ones((6, 3, 3), dtype=np.int64)
    r = random_masks(masks, np.random.default_rng(1))
    assert all((r[i] == masks[r[i, 0, 0]]).all() for i in range(6))  # whole regions of the set, unaltered
    assert (r == random_masks(masks, np.random.default_rng(1))).all()
    one = masks[:1]
    same = random_masks(one, np.random.default_rng(1))
    assert (same == one).all() and same is not one


def test_outside_removes_each_images_own_object_pixels():
    regions = np.array([[[1, 1], [1, 0]], [[1, 1], [1, 1]]], dtype=np.uint8)
    masks = np.array([[[0, 1], [0, 0]], [[1, 1], [1, 1]]], dtype=bool)
    out = outside(regions, masks)
    assert out.dtype == np.uint8
    assert out.tolist() == [[[1, 0], [1, 0]], [[0, 0], [0, 0]]]  # the second region lies wholly inside: empty
    assert np.isnan(region_means(torch.ones(2, 2, 2), out)[1])
