"""L2 projected gradient descent (Madry et al. 2018), for robust training and evaluation (SPEC 2).

Each step moves along the per-example L2-normalised gradient of the cross-entropy, projects the
perturbation onto the L2 ball of radius eps and clips the image to [0, 1]. The papers' robust
ImageNet models use eps = 3 at 224x224; `scale_eps` scales it to other sizes by sqrt(H*W)/224
(the per-pixel perturbation stays the same).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def scale_eps(eps_224: float, height: int, width: int) -> float:
    return float(eps_224) * math.sqrt(height * width) / 224.0


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return delta * (eps / _norms(delta)).clamp(max=1.0)


def l2_pgd(model, x, y, eps: float, step_size: float, steps: int, random_start: bool = True,
           generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Adversarial examples maximising cross-entropy within ||delta||_2 <= eps, x + delta in [0, 1].

    The model's train/eval mode is the caller's choice. Random start: uniform direction, radius
    eps * U^(1/d) (uniform in the ball), drawn from `generator` on the CPU for reproducibility.
    """
    x = x.detach()
    if random_start:
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        d = noise[0].numel()
        r = torch.rand(x.shape[0], generator=generator).to(x.device) ** (1.0 / d) * eps
        delta = noise / _norms(noise) * r.view(-1, *([1] * (x.dim() - 1)))
        delta = (x + delta).clamp(0, 1) - x
    else:
        delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step_size * grad / _norms(grad)
            delta = project_l2(delta, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()
