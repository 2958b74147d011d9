"""Neural activation maps and heatmaps (Singla & Feizi 2022, sec. 3; docs/methods.md#neural-activation-maps).

A NAM is channel j of the robust model's feature map before global pooling, divided by its
per-image spatial maximum and resized bilinearly to the image: a soft mask in [0, 1] whose
maximum is 1. The reference code divides by the maximum unguarded, so an all-zero channel (a ReLU
feature that never fires on the image) gives NaN; here it gives an all-zero mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def activation_maps(feature_map: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Normalise and upsample (B, h, w) channel maps to (B, H, W) soft masks in [0, 1]."""
    a = F.interpolate(feature_map.float().unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
    a = a.clamp_min(0)  # bilinear resampling of a ReLU map stays >= 0; the clamp covers other activations
    peak = a.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(peak > 0, a / peak.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(a))


@torch.no_grad()
def neural_activation_maps(model, images: torch.Tensor, features: torch.Tensor | list[int]) -> torch.Tensor:
    """NAM of feature `features[b]` on image `images[b]` (B, 3, H, W) in [0, 1] -> (B, H, W)."""
    fmap = model.feature_map(images)
    idx = torch.as_tensor(features, device=fmap.device).view(-1, 1, 1, 1).expand(-1, 1, *fmap.shape[2:])
    return activation_maps(fmap.gather(1, idx)[:, 0], images.shape[-2:])


def heatmap(image: np.ndarray, nam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Display only: the jet colour map of `nam` added to `image` (H, W, 3) and renormalised.

    `image` is uint8 or float in [0, 1]; `nam` is (H, W) in [0, 1]. Returns uint8 (H, W, 3).
    """
    from matplotlib import colormaps

    img = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    jet = colormaps["jet"](np.clip(nam, 0, 1))[..., :3].astype(np.float32)
    out = img + weight * jet
    out = out / max(float(out.max()), 1e-12)
    return np.round(out * 255).astype(np.uint8)
