"""Procedural object shapes: the pixel grid, masks placed, scaled and rotated as asked, area oracles."""

import numpy as np
import pytest

from spurlab.data.shapes import PALETTE, SHAPES, pixel_grid, shape_masks

SIZE = 128


def one(name, cx=0.0, cy=0.0, scale=0.5, angle=0.0, size=SIZE):
    return shape_masks([name], np.array([cx]), np.array([cy]), np.array([scale]), np.array([angle]), size)[0]


def test_pixel_grid_centres_in_the_unit_square():
    gx, gy = pixel_grid(4)
    assert gx[0].tolist() == [-0.75, -0.25, 0.25, 0.75] and (gx == gx[0]).all()
    assert (gy == gx.T).all()  # y downwards: rows


@pytest.mark.parametrize(("name", "area"), [("disk", np.pi * 0.8**2), ("square", 1.24**2),
                                            ("diamond", 2 * 0.6 * 0.9), ("ellipse", np.pi * 0.9 * 0.45)])  # fmt: skip
def test_mask_area_is_the_shapes_area_times_scale_squared(name, area):
    scale = 0.5
    frac = one(name, scale=scale).mean()
    assert frac == pytest.approx(area * scale**2 / 4, rel=0.03)  # the image frame [-1, 1]^2 has area 4


# how far each shape reaches from its centre, in units of its scale: the unit disk, except the
# heart, whose lobes reach 1.05 (as the module docstring says)
REACH = {name: 1.06 if name == "heart" else 1.0 for name in SHAPES}


def test_every_shape_fits_in_its_reach_and_is_not_empty():
    gx, gy = pixel_grid(SIZE)
    for name in SHAPES:
        m = one(name, scale=0.5)
        assert m.sum() > 0.05 * m.size / 4, name
        assert (np.hypot(gx, gy)[m] < 0.5 * REACH[name] + 2 / SIZE).all(), name


def test_placement_rotation_and_batch_rows():
    m = one("disk", cx=0.5, cy=-0.5, scale=0.2)
    gx, gy = pixel_grid(SIZE)
    assert gx[m].mean() == pytest.approx(0.5, abs=0.01) and gy[m].mean() == pytest.approx(-0.5, abs=0.01)
    cross = one("square", scale=0.6)
    turned = one("square", scale=0.6, angle=np.pi / 2)
    assert (cross == turned).mean() > 0.99  # a square turned by 90 degrees is itself
    assert (one("arrow", angle=np.pi) == one("arrow")[:, ::-1]).mean() > 0.99  # points left after a half turn
    names = ["disk", "cross", "disk"]
    batch = shape_masks(names, np.zeros(3), np.zeros(3), np.full(3, 0.5), np.zeros(3), SIZE)
    assert batch.dtype == bool and batch.shape == (3, SIZE, SIZE)
    assert all((batch[i] == one(n)).all() for i, n in enumerate(names))


def test_palette_is_shared_colours_in_unit_range():
    assert PALETTE.shape == (10, 3) and PALETTE.dtype == np.float32
    assert (PALETTE >= 0).all() and (PALETTE <= 1).all() and len({tuple(c) for c in PALETTE.tolist()}) == 10
