"""Feature attack: amplify one neural feature in an image (Singla & Feizi 2022, sec. 3.2; docs/methods.md#feature-attack).

Gradient ascent on phi_j(x): each step moves x along the L2-normalised gradient, projects the total
change onto the L2 ball of radius rho and clips to [0, 1]. The paper and its reference code differ:

    paper ("paper", the default):  step 40, 25 iterations, rho = 500
    reference code ("code"):       step 10, 100 iterations, no projection

Both are given for 224x224 images; step and rho are scaled by sqrt(H*W)/224 (as the L2 norm of a
perturbation of fixed per-pixel size scales) and the values used are returned with the images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..tensor_ops import l2_norms

PRESETS = {
    "paper": {"step": 40.0, "iterations": 25, "rho": 500.0},
    "code": {"step": 10.0, "iterations": 100, "rho": None},
}


@dataclass(frozen=True)
class AttackSettings:
    step: float
    iterations: int
    rho: float | None  # None: no projection (the reference code)

    @classmethod
    def for_image_size(cls, preset: str, height: int, width: int) -> AttackSettings:
        if preset not in PRESETS:
            raise ValueError(f"feature attack preset must be one of {sorted(PRESETS)}, not {preset!r}")
        p, scale = PRESETS[preset], math.sqrt(height * width) / 224.0
        return cls(p["step"] * scale, p["iterations"], None if p["rho"] is None else p["rho"] * scale)

    def as_dict(self) -> dict:
        return asdict(self)


def feature_attack(model, images: torch.Tensor, features, settings: AttackSettings) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] with feature `features[b]` amplified in image b."""
    idx = torch.as_tensor(features, device=images.device).view(-1, 1)
    x0 = images.detach()
    x = x0.clone()
    for _ in range(settings.iterations):
        x.requires_grad_(True)
        act = model.features(x).gather(1, idx).sum()
        (grad,) = torch.autograd.grad(act, x)
        with torch.no_grad():
            x = x + settings.step * grad / l2_norms(grad)
            if settings.rho is not None:
                delta = x - x0
                x = x0 + delta * (settings.rho / l2_norms(delta)).clamp(max=1.0)
            x = x.clamp(0.0, 1.0)
    return x.detach()
