"""Core cropping (Moayeri et al. 2023, "Spuriosity Rankings", appendix H; docs/methods.md#core-cropping).

Crops an image to its class object, so a model can be checked on the object alone (the paper uses
it on high-spuriosity images of classes with a negative spurious gap, to flag label noise). The
paper's procedure, followed here:

1. soft core segmentation: the average of the NAMs (docs/methods.md#neural-activation-maps) of the class's core features;
2. keep the highly activated pixels, >= 0.9;
3. bounding box of the kept pixels;
4. expand it by 20% in height and in width (10% on each side, about the box centre), since the high
   threshold keeps only the peak;
5. extend the shorter side to the longer one (a square about the same centre);
6. keep it inside the image: shift it in, and clip it only where it is larger than the image.

Deviation: each NAM peaks at 1, but core features peaking in different places can leave their
average below 0.9 everywhere, and the paper's rule would then keep nothing. There the threshold is
0.9 x the average's maximum instead (relative); `core_threshold` says which rule was used, and
`core_crops` returns it per image. An all-zero average (no core feature fires) gives the whole
image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLD = 0.9  # paper
EXPAND = 0.2  # paper: 20% in height and width


def core_threshold(avg: np.ndarray, threshold: float = THRESHOLD) -> tuple[float, bool]:
    """(threshold applied to the averaged NAM `avg`, whether the relative fallback was used)."""
    peak = float(avg.max()) if avg.size else 0.0
    if peak >= threshold:
        return float(threshold), False
    return threshold * peak, True


def _span(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """[lo, hi) widened to `side` about its centre, shifted into [0, limit), clipped if longer."""
    start = math.floor((lo + hi) / 2 - side / 2 + 0.5)
    start = min(max(start, 0), max(limit - side, 0))
    return start, min(start + side, limit)


def core_crop_box(core_nams: np.ndarray, threshold: float = THRESHOLD,
                  expand: float = EXPAND) -> tuple[int, int, int, int]:  # fmt: skip
    """Square crop box (y0, x0, y1, x1), half-open, from core NAMs (F, H, W) or their average (H, W)."""
    avg = np.asarray(core_nams, dtype=np.float64)
    avg = avg.mean(0) if avg.ndim == 3 else avg
    h, w = avg.shape
    if not avg.max() > 0:
        return 0, 0, h, w
    t, _ = core_threshold(avg, threshold)
    ys, xs = np.nonzero(avg >= t)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = max(1, round(max(y1 - y0, x1 - x0) * (1 + expand)))  # expand both sides, then square the longer
    (y0, y1), (x0, x1) = _span(y0, y1, side, h), _span(x0, x1, side, w)
    return y0, x0, y1, x1


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """uint8 (H, W, 3) cropped to `box` and resized to (size, size, 3), bilinear with antialiasing."""
    y0, x0, y1, x1 = box
    crop = image[y0:y1, x0:x1]
    if crop.shape[:2] == (size, size):
        return crop.copy()
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


@torch.no_grad()
def core_crops(model, images: np.ndarray, core_features: list[int], device, batch_size: int = 64,
               threshold: float = THRESHOLD, expand: float = EXPAND):  # fmt: skip
    """Core-crop uint8 images (N, H, W, 3) with the model's core features of their class.

    Returns (boxes (N, 4) int64, crops uint8 (N, H, W, 3) resized back to the image size, core mask
    (N, H, W) float32 = the averaged core NAM, relative (N,) bool = the fallback threshold was used).
    """
    from ..discover.nam import activation_maps

    if not len(core_features):
        raise ValueError("core_crops: no core features given")
    n, h, w, _ = images.shape
    feats = torch.as_tensor(list(core_features), dtype=torch.long, device=device)
    avg = np.zeros((n, h, w), np.float32)
    for s in range(0, n, batch_size):
        x = torch.from_numpy(images[s : s + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        fmap = model.feature_map(x)[:, feats]  # one forward pass for all core features (as neural_activation_maps)
        nams = activation_maps(fmap.flatten(0, 1), (h, w)).view(len(x), len(feats), h, w)
        avg[s : s + len(x)] = nams.mean(1).cpu().numpy()
    boxes = np.array([core_crop_box(a, threshold, expand) for a in avg], dtype=np.int64).reshape(n, 4)
    relative = np.array([a.max() > 0 and core_threshold(a, threshold)[1] for a in avg], dtype=bool)
    crops = np.stack([crop_resize(img, b, h) for img, b in zip(images, boxes)]) if n else images.copy()
    return boxes, crops, avg, relative
