"""Procedural object shapes for the planted-cue benchmark (docs/methods.md#planted-cue-benchmark).

Each shape is an implicit region ``inside(u, v) -> bool`` in the object's local frame, where the
object is centred at the origin and fits in the unit disk (the heart's lobes reach 1.05). Rendering maps every pixel into that
frame (rotation, scale, translation), so one vectorised call draws a whole batch. Colour is not
part of a shape: it is drawn from a palette shared by all classes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Inside = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _polar(u, v):
    return np.hypot(u, v), np.arctan2(v, u)


def _regular_polygon(n: int, radius: float = 0.9, phase: float = np.pi / 2) -> Inside:
    """Regular n-gon of circumradius `radius`, one vertex pointing up."""
    sector = 2 * np.pi / n

    def inside(u, v):
        r, t = _polar(u, v)
        t = np.mod(t - phase + sector / 2, sector) - sector / 2
        return r * np.cos(t) < radius * np.cos(sector / 2)

    return inside


def _disk(u, v):
    return u * u + v * v < 0.8**2


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) < 0.62


def _diamond(u, v):
    return np.abs(u) / 0.6 + np.abs(v) / 0.9 < 1.0


def _star(u, v):
    r, t = _polar(u, v)
    # radius zig-zags between 0.38 (inner) and 0.92 (tips) five times per turn
    frac = np.mod(5 * (t + np.pi / 2) / (2 * np.pi), 1.0)
    return r < 0.38 + 0.54 * (1.0 - 2.0 * np.abs(frac - 0.5)) ** 1.5


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au < 0.24) & (av < 0.85)) | ((av < 0.24) & (au < 0.85))


def _ring(u, v):
    rr = u * u + v * v
    return (rr < 0.85**2) & (rr > 0.5**2)


def _crescent(u, v):
    return (u * u + v * v < 0.85**2) & ((u - 0.38) ** 2 + v * v > 0.66**2)


def _arrow(u, v):
    shaft = (np.abs(v) < 0.17) & (u > -0.85) & (u < 0.15)
    head = (u >= 0.15) & (u < 0.85) & (np.abs(v) < 0.6 * (0.85 - u) / 0.7)
    return shaft | head


def _heart(u, v):
    x, y = u * 1.25, -(v * 1.25) + 0.15
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 < 0.0


def _semicircle(u, v):
    return (u * u + v * v < 0.85**2) & (v < 0.25)


def _ellipse(u, v):
    return (u / 0.9) ** 2 + (v / 0.45) ** 2 < 1.0


SHAPES: dict[str, Inside] = {
    "disk": _disk,
    "square": _square,
    "triangle": _regular_polygon(3, 0.95),
    "star": _star,
    "cross": _cross,
    "ring": _ring,
    "hexagon": _regular_polygon(6, 0.85),
    "crescent": _crescent,
    "arrow": _arrow,
    "heart": _heart,
    "diamond": _diamond,
    "pentagon": _regular_polygon(5, 0.88),
    "semicircle": _semicircle,
    "ellipse": _ellipse,
}

# Colours shared by every class, so colour carries no class information (docs/methods.md#planted-cue-benchmark).
PALETTE = np.array(
    [
        [0.90, 0.20, 0.15],  # red
        [0.95, 0.55, 0.10],  # orange
        [0.95, 0.90, 0.20],  # yellow
        [0.20, 0.75, 0.25],  # green
        [0.15, 0.80, 0.85],  # cyan
        [0.20, 0.30, 0.90],  # blue
        [0.60, 0.25, 0.80],  # purple
        [0.95, 0.45, 0.70],  # pink
        [0.97, 0.97, 0.97],  # white
        [0.08, 0.08, 0.08],  # black
    ],
    dtype=np.float32,
)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (x to the right, y downwards), each of shape (H, W)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    return np.meshgrid(c, c, indexing="xy")


def shape_masks(
    names: list[str] | np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    scale: np.ndarray,
    angle: np.ndarray,
    size: int,
) -> np.ndarray:
    """Binary masks (B, H, W) of shapes `names[i]` at centre (cx, cy), radius `scale`, rotation `angle`.

    Coordinates are in the [-1, 1] image frame; one vectorised evaluation per distinct shape.
    """
    gx, gy = pixel_grid(size)
    dx = gx[None] - cx[:, None, None]
    dy = gy[None] - cy[:, None, None]
    c = np.cos(angle)[:, None, None]
    s = np.sin(angle)[:, None, None]
    inv = 1.0 / scale[:, None, None]
    u = (c * dx + s * dy) * inv
    v = (-s * dx + c * dy) * inv
    names = np.asarray(names)
    out = np.zeros(u.shape, dtype=bool)
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        out[rows] = SHAPES[str(name)](u[rows], v[rows])
    return out
