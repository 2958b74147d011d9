"""L2 projected gradient descent (Madry et al. 2018), for robust training and evaluation (docs/methods.md#models).

Each step moves along the per-example L2-normalised gradient of the cross-entropy, projects the
perturbation onto the L2 ball of radius eps and clips the image to [0, 1]. The papers' robust
ImageNet models use eps = 3 at 224x224; `scale_eps` scales it to other sizes by sqrt(H*W)/224
(the per-pixel perturbation stays the same).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import SpurlabError
from ..tensor_ops import l2_norms


def scale_eps(eps_224: float, height: int, width: int) -> float:
    """The L2 radius at HxW with the same per-pixel RMS perturbation as `eps_224` at 224x224."""
    return float(eps_224) * math.sqrt(height * width) / 224.0


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return delta * (eps / l2_norms(delta)).clamp(max=1.0)


def l2_pgd(model, x, y, eps: float, step_size: float, steps: int, random_start: bool = True,
           generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Adversarial examples maximising cross-entropy within ||delta||_2 <= eps, x + delta in [0, 1].

    The model's train/eval mode is the caller's choice (never flipped here), and no parameter
    gradient is accumulated (autograd.grad w.r.t. delta only). Random start: uniform direction,
    radius eps * U^(1/d) (uniform in the ball), drawn from `generator` on its own device (a CPU
    generator gives the same start on any device; None: torch's global CPU generator).
    """
    if eps < 0 or step_size < 0 or steps < 0:
        raise SpurlabError(f"l2_pgd: eps {eps}, step_size {step_size}, steps {steps} must be >= 0")
    x = x.detach()
    view = (-1,) + (1,) * (x.dim() - 1)
    if random_start and eps > 0:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(x.shape, generator=generator, device=gen_device).to(x.device, x.dtype)
        r = torch.rand(x.shape[0], generator=generator, device=gen_device).to(x.device, x.dtype)
        radius = r ** (1.0 / noise[0].numel()) * eps
        delta = noise / l2_norms(noise) * radius.view(view)
        delta = (x + delta).clamp(0, 1) - x
    else:
        delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        # summed (not mean) loss: per-example gradients do not shrink with the batch size; the
        # step is normalised per example anyway
        loss = F.cross_entropy(model(x + delta), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step_size * grad / l2_norms(grad)
            delta = project_l2(delta, eps)
            # clipping to the box keeps delta in the ball: every coordinate only shrinks towards 0
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).clamp(0, 1).detach()
