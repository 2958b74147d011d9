"""Core cropping (docs/methods.md#core-cropping): the paper's box rule, keeping inside the image, the relative fallback."""

import numpy as np
import pytest
import torch

from spurlab.measure.core_crop import core_crop_box, core_crops, core_threshold, crop_resize
from spurlab.models.factory import build_classifier


def _blob(y0, y1, x0, x1, value=1.0, size=64):
    m = np.zeros((size, size), np.float32)
    m[y0:y1, x0:x1] = value
    return m


def test_box_of_a_known_blob():
    # rows 10..19 (height 10), cols 20..39 (width 20): +20% -> 12 x 24; square 24 about the
    # centre (15, 30): rows 15 - 12 .. 15 + 12, cols 30 - 12 .. 30 + 12
    assert core_crop_box(_blob(10, 20, 20, 40)) == (3, 18, 27, 42)
    # (F, H, W) input is averaged first: two identical NAMs give the same box
    assert core_crop_box(np.stack([_blob(10, 20, 20, 40)] * 2)) == (3, 18, 27, 42)


def test_box_is_shifted_inside_at_the_border():
    # rows 0..9, cols 50..63: longest side 14 -> round(16.8) = 17; centred at (5, 57) it would span
    # rows -3..14 and cols 49..66: shifted to rows 0..17 and cols 47..64
    box = core_crop_box(_blob(0, 10, 50, 64))
    assert box == (0, 47, 17, 64)
    y0, x0, y1, x1 = box
    assert y1 - y0 == x1 - x0 and 0 <= y0 and 0 <= x0 and y1 <= 64 and x1 <= 64


def test_box_larger_than_the_image_is_clipped_to_it():
    assert core_crop_box(_blob(0, 60, 2, 62)) == (0, 0, 64, 64)


def test_relative_threshold_when_the_average_never_reaches_0_9():
    avg = _blob(10, 20, 20, 40, value=0.5) + _blob(40, 50, 0, 10, value=0.3)
    t, relative = core_threshold(avg)
    assert relative and t == pytest.approx(0.45)
    assert core_crop_box(avg) == (3, 18, 27, 42)  # only the 0.5 blob passes 0.9 * 0.5
    t, relative = core_threshold(_blob(10, 20, 20, 40))
    assert not relative and t == 0.9
    # two core NAMs peaking apart: their average is 0.5 everywhere they fire -> relative keeps both
    box = core_crop_box(np.stack([_blob(10, 20, 10, 20), _blob(40, 50, 40, 50)]))
    assert box[0] <= 10 and box[1] <= 10 and box[2] >= 50 and box[3] >= 50


def test_all_zero_average_gives_the_whole_image():
    assert core_crop_box(np.zeros((32, 32))) == (0, 0, 32, 32)


def test_crop_resize():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_resize(img, (0, 0, 64, 64), 64), img)
    flat = np.full((64, 64, 3), 77, np.uint8)
    out = crop_resize(flat, (3, 18, 27, 42), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and (out == 77).all()
    # a crop of the left half of a left-black / right-white image is all black
    lr = np.zeros((64, 64, 3), np.uint8)
    lr[:, 32:] = 255
    assert (crop_resize(lr, (0, 0, 32, 32), 64) == 0).all()


def test_core_crops_on_a_tiny_model():
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 3, 32, {"width": 4}).eval()
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    boxes, crops, avg, relative = core_crops(model, images, [0, 1, 2], torch.device("cpu"), batch_size=2)
    assert boxes.shape == (5, 4) and crops.shape == images.shape and crops.dtype == np.uint8
    assert avg.shape == (5, 32, 32) and avg.min() >= 0 and avg.max() <= 1 + 1e-6 and relative.shape == (5,)
    for b, a, rel in zip(boxes, avg, relative):
        assert tuple(b) == core_crop_box(a)
        assert b[2] - b[0] == b[3] - b[1] and b[0] >= 0 and b[1] >= 0 and b[2] <= 32 and b[3] <= 32
        assert rel == (0 < a.max() < 0.9)
    # the averaged mask is the mean of the single-feature NAMs (neural_activation_maps)
    from spurlab.discover.nam import neural_activation_maps

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    ref = torch.stack([neural_activation_maps(model, x, [j] * 5) for j in (0, 1, 2)]).mean(0).numpy()
    np.testing.assert_allclose(avg, ref, atol=1e-6)
    with pytest.raises(ValueError, match="no core features"):
        core_crops(model, images, [], torch.device("cpu"))
