"""Spurious cue renderers: each cue's returned mask is exactly where it painted, placed as specified
(tag corner, stripe columns, co-object beside the class object), drawn only on the rows where on."""

import numpy as np
import pytest

from spurlab.data.cues import N_PARAMS, ObjectFrame, apply_cue
from spurlab.data.shapes import pixel_grid, shape_masks

SIZE, B = 64, 6


def scene():
    rng = np.random.default_rng(0)
    cx, cy, scale = np.zeros(B, np.float32), np.zeros(B, np.float32), np.full(B, 0.3, np.float32)
    mask = shape_masks(["disk"] * B, cx, cy, scale, np.zeros(B), SIZE)
    canvas = np.full((B, SIZE, SIZE, 3), 0.5, np.float32)
    canvas[mask] = 0.2
    return canvas, ObjectFrame(mask, cx, cy, scale), rng.random((B, N_PARAMS)).astype(np.float32)


def draw(spec, on=None):
    canvas, obj, u = scene()
    before = canvas.copy()
    on = np.ones(B, bool) if on is None else on
    mask = apply_cue(canvas, spec, u, obj, on)
    return before, canvas, mask, obj


def test_tag_sits_in_its_corner_and_is_the_only_change():
    spec = {"type": "tag", "corner": "top_left", "size": [0.4, 0.25], "color": [0.9, 0.9, 0.9]}
    before, canvas, mask, _ = draw(spec)
    changed = (canvas != before).any(axis=3)
    assert (changed <= mask).all() and mask.any(axis=(1, 2)).all()
    rows, cols = np.nonzero(mask[0])
    assert rows.max() < SIZE * (0.04 + 0.03 + 0.25) + 1 and cols.max() < SIZE * (0.04 + 0.03 + 0.4) + 1
    assert mask.sum(axis=(1, 2)) == pytest.approx(0.4 * 0.25 * SIZE * SIZE, rel=0.1)
    dark = (canvas[mask] < 0.2).all(axis=1).mean()  # the pseudo-text
    assert 0.05 < dark < 0.6
    plain = draw({**spec, "corner": "bottom_right", "text": False})
    assert np.unique(plain[1][plain[2]], axis=0).tolist() == [[pytest.approx(0.9)] * 3]
    assert np.nonzero(plain[2][0])[0].min() > SIZE / 2


def test_stripe_is_two_full_height_columns_at_x():
    spec = {"type": "stripe", "x": 0.7, "width": 0.05, "gap": 0.05, "color": [1.0, 0.0, 0.0]}
    _, canvas, mask, _ = draw(spec)
    cols = mask[0].any(axis=0)
    assert (mask[0][:, cols]).all()  # full height
    edges = np.flatnonzero(np.diff(cols.astype(int)))
    assert len(edges) == 4  # two separate columns
    c = (np.arange(SIZE) + 0.5) / SIZE
    assert abs(c[cols].min() - 0.7) < 0.03
    assert (canvas[mask] == [1.0, 0.0, 0.0]).all()


def test_co_object_lies_beside_the_object_and_background_cue_is_the_background():
    spec = {"type": "co_object", "glyph": "disk", "size": 0.15, "color": [0.0, 1.0, 0.0]}
    _, canvas, mask, obj = draw(spec)
    assert mask.any(axis=(1, 2)).all() and not (mask & obj.mask).any()
    gx, gy = pixel_grid(SIZE)
    dist = np.hypot(gx[mask[0]].mean(), gy[mask[0]].mean())
    assert dist == pytest.approx(0.3 + 1.15 * 0.15, abs=0.05)
    _, _, bg, obj = draw({"type": "background"})
    assert (bg == ~obj.mask).all()


def test_blur_changes_only_the_background_and_off_rows_are_untouched():
    spec = {"type": "blur", "sigma": 2.0}
    on = np.array([True, False] * 3)
    before, canvas, mask, obj = draw(spec, on)
    assert not mask[~on].any() and (canvas[~on] == before[~on]).all()
    assert (mask[on] == ~obj.mask[on]).all()
    assert (canvas[on][obj.mask[on]] == before[on][obj.mask[on]]).all()  # the object stays sharp
    assert (canvas[on] != before[on]).any()


def test_object_frame_from_masks_recovers_centre_and_radius():
    m = shape_masks(["disk"], np.array([0.25]), np.array([-0.25]), np.array([0.5]), np.zeros(1), 128)
    f = ObjectFrame.from_masks(np.concatenate([m, np.zeros_like(m)]))
    assert f.cx[0] == pytest.approx(0.25, abs=0.01) and f.cy[0] == pytest.approx(-0.25, abs=0.01)
    assert f.scale[0] == pytest.approx(0.5 * 0.8, rel=0.02)  # the disk's radius is 0.8 of its scale
    assert (f.cx[1], f.cy[1], f.scale[1]) == (0.0, 0.0, 0.0)  # no object: the centre, no radius
