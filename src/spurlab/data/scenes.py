"""Procedural scene textures for the planted-cue benchmark (docs/methods.md#planted-cue-benchmark).

Each scene renders a batch from a fixed-size block of per-image uniforms ``p`` (B, 8) and a low
resolution noise field ``noise`` (B, 16, 16). Every image draws the same amount of randomness
whatever its scene, so swapping the scene of one image (a background cue switched on or off)
changes nothing else about it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from .shapes import pixel_grid

N_PARAMS = 8
NOISE_RES = 16


@lru_cache(maxsize=8)
def _bilinear_taps(size: int, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and weight of hi for resampling res cells onto size pixels."""
    pos = (np.arange(size) + 0.5) * res / size - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, res - 1)
    hi = np.clip(lo + 1, 0, res - 1)
    w = np.clip(pos - np.floor(pos), 0.0, 1.0).astype(np.float32)
    w[pos < 0] = 0.0
    return lo, hi, w


def smooth_noise(noise: np.ndarray, size: int, res: int | None = None) -> np.ndarray:
    """Bilinearly upsample the leading res x res block of a (B, 16, 16) field to (B, size, size).

    Elementwise only (no BLAS): a matrix product's rounding can depend on memory alignment and
    batch size, and the generator must give the same bytes for an image whatever its chunk.
    """
    res = res or noise.shape[-1]
    lo, hi, w = _bilinear_taps(size, res)
    field = noise[:, :res, :res]
    rows = field[:, lo, :] * (1 - w)[None, :, None] + field[:, hi, :] * w[None, :, None]
    return rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]


def _mix(c0, c1, t):
    """Blend colours c0, c1 (B, 3) by t (B, H, W) -> (B, H, W, 3), in one output buffer."""
    c0 = c0[:, None, None, :].astype(np.float32)
    out = np.multiply(t[..., None], (c1[:, None, None, :] - c0).astype(np.float32), dtype=np.float32)
    out += c0
    return out


def _jitter(base, p, amount=0.08):
    return np.clip(np.asarray(base, np.float32)[None] + (p[:, None] - 0.5) * 2 * amount, 0, 1)


def _stripes(p, noise, size):
    gx, gy = pixel_grid(size)
    ang = p[:, 0] * np.pi
    freq = 4 + 4 * p[:, 1]
    d = np.cos(ang)[:, None, None] * gx + np.sin(ang)[:, None, None] * gy
    t = (np.sin(d * freq[:, None, None] * np.pi + p[:, 2, None, None] * 6.28) > 0).astype(np.float32)
    return _mix(_jitter([0.85, 0.80, 0.65], p[:, 3]), _jitter([0.55, 0.45, 0.40], p[:, 4]), t)


def _checker(p, noise, size):
    gx, gy = pixel_grid(size)
    f = (3 + np.floor(4 * p[:, 0]))[:, None, None]
    t = (np.floor((gx + p[:, 1, None, None]) * f) + np.floor((gy + p[:, 2, None, None]) * f)) % 2
    return _mix(_jitter([0.75, 0.75, 0.78], p[:, 3]), _jitter([0.35, 0.35, 0.40], p[:, 4]), t)


def _sky(p, noise, size):
    gx, gy = pixel_grid(size)
    t = np.clip((gy[None] + 1) / 2 + 0.15 * smooth_noise(noise, size, 4) - 0.1, 0, 1)
    return _mix(_jitter([0.35, 0.60, 0.95], p[:, 0]), _jitter([0.90, 0.95, 1.0], p[:, 1], 0.04), t)


def _grass(p, noise, size):
    coarse = smooth_noise(noise, size, 8)
    fine = smooth_noise(noise[:, ::-1, ::-1], size, 16)
    t = np.clip(0.5 * coarse + 0.5 * fine, 0, 1)
    return _mix(_jitter([0.15, 0.45, 0.10], p[:, 0]), _jitter([0.45, 0.75, 0.25], p[:, 1]), t)


def _water(p, noise, size):
    gx, gy = pixel_grid(size)
    ph = p[:, :3, None, None] * 6.28
    t = np.sin(gy * 9 + 2.0 * np.sin(gx * 3 + ph[:, 0]) + ph[:, 1]) + 0.5 * np.sin(gy * 17 + gx * 5 + ph[:, 2])
    t = np.clip(0.5 + 0.3 * t, 0, 1)
    return _mix(_jitter([0.05, 0.25, 0.55], p[:, 3]), _jitter([0.30, 0.60, 0.85], p[:, 4]), t)


def _bricks(p, noise, size):
    gx, gy = pixel_grid(size)
    rows = (4 + np.floor(3 * p[:, 0]))[:, None, None]
    y = (gy[None] + 1) / 2 * rows
    row = np.floor(y)
    x = (gx[None] + 1) / 2 * rows / 2 + 0.5 * (row % 2) + p[:, 1, None, None]
    mortar = (np.abs(y - np.round(y)) < 0.09) | (np.abs(x - np.round(x)) < 0.05)
    t = mortar.astype(np.float32)
    return _mix(_jitter([0.65, 0.25, 0.18], p[:, 2]), _jitter([0.85, 0.82, 0.78], p[:, 3], 0.04), t)


def _dots(p, noise, size):
    gx, gy = pixel_grid(size)
    f = (3 + np.floor(3 * p[:, 0]))[:, None, None]
    fx = np.mod((gx + p[:, 1, None, None]) * f, 1.0) - 0.5
    fy = np.mod((gy + p[:, 2, None, None]) * f, 1.0) - 0.5
    t = (fx * fx + fy * fy < 0.09).astype(np.float32)
    return _mix(_jitter([0.95, 0.92, 0.80], p[:, 3], 0.04), _jitter([0.40, 0.20, 0.45], p[:, 4]), t)


def _wood(p, noise, size):
    gx, gy = pixel_grid(size)
    ox, oy = p[:, 0, None, None] * 4 - 2, p[:, 1, None, None] * 4 - 2
    r = np.hypot(gx - ox, gy - oy) + 0.15 * smooth_noise(noise, size, 4)
    t = 0.5 + 0.5 * np.sin(r * (12 + 6 * p[:, 2, None, None]))
    return _mix(_jitter([0.45, 0.28, 0.12], p[:, 3]), _jitter([0.72, 0.52, 0.30], p[:, 4]), t)


def _sand(p, noise, size):
    fine = smooth_noise(noise, size, 16)
    gx, gy = pixel_grid(size)
    ripple = 0.5 + 0.5 * np.sin(gy * (6 + 4 * p[:, 0, None, None]) + gx * 2 + p[:, 1, None, None] * 6)
    t = np.clip(0.6 * fine + 0.4 * ripple, 0, 1)
    return _mix(_jitter([0.80, 0.68, 0.45], p[:, 2]), _jitter([0.95, 0.88, 0.65], p[:, 3], 0.04), t)


def _clouds(p, noise, size):
    t = 0.6 * smooth_noise(noise, size, 4) + 0.4 * smooth_noise(noise[:, ::-1], size, 8)
    t = np.clip((t - 0.3) * 1.6, 0, 1)
    return _mix(_jitter([0.45, 0.55, 0.70], p[:, 0]), _jitter([0.96, 0.96, 0.97], p[:, 1], 0.03), t)


def _gray(p, noise, size):
    """Uniform gray (0.5): BAM's X_og background."""
    return np.full((p.shape[0], size, size, 3), 0.5, dtype=np.float32)


SCENES: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "stripes": _stripes,
    "checker": _checker,
    "sky": _sky,
    "grass": _grass,
    "water": _water,
    "bricks": _bricks,
    "dots": _dots,
    "wood": _wood,
    "sand": _sand,
    "clouds": _clouds,
}
# Not drawable as a class scene, only as a BAM background replacement.
GRAY = "gray"


def render_scenes(names: np.ndarray, p: np.ndarray, noise: np.ndarray, size: int) -> np.ndarray:
    """Render scene `names[i]` for every row: (B, H, W, 3) float32 in [0, 1]."""
    out = np.empty((len(names), size, size, 3), dtype=np.float32)
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        fn = _gray if name == GRAY else SCENES[str(name)]
        out[rows] = fn(p[rows], noise[rows], size)
    return out
