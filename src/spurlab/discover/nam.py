"""Neural activation maps (Singla & Feizi 2022, sec. 3; docs/methods.md#neural-activation-maps); heatmaps
are in spurlab.discover.heatmap (torch-free).

A NAM is channel j of the robust model's feature map before global pooling, divided by its
per-image spatial maximum and resized bilinearly to the image: a soft mask in [0, 1] whose
maximum is 1. The reference code divides by the maximum unguarded, so an all-zero channel (a ReLU
feature that never fires on the image) gives NaN; here it gives an all-zero mask.
"""

from __future__ import annotations

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


@torch.no_grad()
def feature_map_size(model, image_size: int, device=None) -> int:
    """The width of the model's pre-pool feature map on (image_size x image_size) inputs: the
    grid a NAM is upsampled from."""
    return int(model.feature_map(torch.zeros(1, 3, image_size, image_size, device=device)).shape[-1])
