"""Spurious cue renderers (cue types: docs/methods.md#planted-cue-benchmark; contamination
signals: docs/methods.md#spurious-contamination).

A cue is drawn onto a float canvas (B, H, W, 3) in place and returns its ground-truth pixel mask
(B, H, W) bool. The same renderers serve the generator (cues planted while rendering) and
`contaminate.scf` (signals added to finished images), so the two can never drift apart.

Every cue reads its per-image randomness from a fixed-size block of uniforms ``u`` (B, N_PARAMS),
drawn whether or not the cue is on: switching a cue changes only that cue's pixels.

Sizes are fractions of the image side (the papers give none for tag, stripe and blur; Adebayo et
al. describe a hospital tag in a corner, paired vertical stripes and a background Gaussian blur).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import pixel_grid, shape_masks

N_PARAMS = 64
CUE_TYPES = ("background", "co_object", "tag", "stripe", "blur")
# Drawing order after the object: blur first (it must not smear the other cues), tags on top.
RENDER_ORDER = {"background": 0, "blur": 1, "co_object": 2, "stripe": 3, "tag": 4}
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


@dataclass
class ObjectFrame:
    """Where the class object is, for cues placed relative to it (image frame [-1, 1])."""

    mask: np.ndarray  # (B, H, W) bool
    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_masks(cls, mask: np.ndarray) -> ObjectFrame:
        """Centroid and equivalent radius of each mask (for images the generator did not draw)."""
        b, h, w = mask.shape
        gx, gy = pixel_grid(h)
        area = mask.sum(axis=(1, 2)).astype(np.float32)
        safe = np.maximum(area, 1.0)
        cx = np.where(area > 0, (mask * gx).sum(axis=(1, 2)) / safe, 0.0)
        cy = np.where(area > 0, (mask * gy).sum(axis=(1, 2)) / safe, 0.0)
        scale = np.sqrt(area / (h * w) * 4.0 / np.pi)
        return cls(mask, cx.astype(np.float32), cy.astype(np.float32), scale.astype(np.float32))


def _paint(canvas, mask, color):
    canvas[mask] = np.asarray(color, dtype=np.float32)


def _background(canvas, spec, u, obj: ObjectFrame):
    # The scene swap itself happens before the object is drawn (synth.render); the cue's pixels
    # are the visible background.
    return ~obj.mask


def _blur(canvas, spec, u, obj: ObjectFrame):
    from scipy.ndimage import gaussian_filter

    size = canvas.shape[1]
    sigma = float(spec["sigma"]) * size / 64.0
    blurred = gaussian_filter(canvas, sigma=(0, sigma, sigma, 0), mode="reflect", truncate=3.0)
    bg = ~obj.mask
    canvas[bg] = blurred[bg]
    return bg


def _co_object(canvas, spec, u, obj: ObjectFrame):
    size = canvas.shape[1]
    r = np.full(len(u), float(spec["size"]), dtype=np.float32)
    ang = u[:, 0] * 2 * np.pi
    dist = obj.scale + 1.15 * r
    cx = np.clip(obj.cx + dist * np.cos(ang), -1 + r, 1 - r)
    cy = np.clip(obj.cy + dist * np.sin(ang), -1 + r, 1 - r)
    mask = shape_masks([spec["glyph"]] * len(u), cx, cy=cy, scale=r, angle=u[:, 1] * 2 * np.pi, size=size)
    _paint(canvas, mask, spec["color"])
    return mask


def _tag(canvas, spec, u, obj: ObjectFrame):
    """A label with two rows of four dark pseudo-characters, its text random per image
    (``text: false``: a plain patch)."""
    b, size = canvas.shape[0], canvas.shape[1]
    w, h = spec["size"]
    margin = 0.04
    x0 = margin + 0.03 * u[:, 0] if "left" in spec["corner"] else 1 - margin - w - 0.03 * u[:, 0]
    y0 = margin + 0.03 * u[:, 1] if "top" in spec["corner"] else 1 - margin - h - 0.03 * u[:, 1]
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    tx = (c[None, None, :] - x0[:, None, None]) / w  # (B, 1, W) in [0, 1) inside the tag
    ty = (c[None, :, None] - y0[:, None, None]) / h  # (B, H, 1)
    mask = (tx >= 0) & (tx < 1) & (ty >= 0) & (ty < 1)
    _paint(canvas, mask, spec["color"])
    if not spec.get("text", True):
        return mask  # a plain patch: an occluder with no tag-like strokes
    # 2 rows x 4 characters, each a 2 x 3 grid of strokes switched on by the uniforms
    cols, rows = 4, 2
    ix = np.clip(np.floor(tx * cols * 2), 0, cols * 2 - 1).astype(int)  # stroke column
    iy = np.clip(np.floor(ty * rows * 3), 0, rows * 3 - 1).astype(int)  # stroke row
    fx = np.mod(tx * cols * 2, 1.0)
    fy = np.mod(ty * rows * 3, 1.0)
    bits = u[:, 2 : 2 + cols * 2 * rows * 3] < 0.55
    idx = iy * (cols * 2) + ix
    stroke = np.take_along_axis(bits, idx.reshape(b, -1), axis=1).reshape(idx.shape)
    ink = mask & stroke & (fx > 0.2) & (fx < 0.8) & (fy > 0.15) & (fy < 0.85)
    ink &= (ty > 0.12) & (ty < 0.88) & (tx > 0.05) & (tx < 0.95)
    _paint(canvas, ink, [0.1, 0.1, 0.12])
    return mask


def _stripe(canvas, spec, u, obj: ObjectFrame):
    size = canvas.shape[1]
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    x0 = float(spec["x"]) + (u[:, 0] - 0.5) * 0.04
    w, gap = float(spec["width"]), float(spec["gap"])
    dx = c[None, :] - x0[:, None]
    cols = ((dx >= 0) & (dx < w)) | ((dx >= w + gap) & (dx < 2 * w + gap))
    mask = np.broadcast_to(cols[:, None, :], (len(u), size, size)).copy()
    _paint(canvas, mask, spec["color"])
    return mask


_RENDERERS = {
    "background": _background,
    "blur": _blur,
    "co_object": _co_object,
    "tag": _tag,
    "stripe": _stripe,
}


def apply_cue(canvas: np.ndarray, spec: dict, u: np.ndarray, obj: ObjectFrame, on: np.ndarray) -> np.ndarray:
    """Draw cue `spec` on the rows of `canvas` where `on`; return its mask (zero where off)."""
    b, size = canvas.shape[0], canvas.shape[1]
    mask = np.zeros((b, size, size), dtype=bool)
    rows = np.flatnonzero(on)
    if len(rows) == 0:
        return mask
    sub = canvas[rows]
    frame = ObjectFrame(obj.mask[rows], obj.cx[rows], obj.cy[rows], obj.scale[rows])
    mask[rows] = _RENDERERS[spec["type"]](sub, spec, u[rows], frame)
    canvas[rows] = sub
    return mask
