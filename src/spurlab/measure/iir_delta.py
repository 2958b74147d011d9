"""The functionally similar perturbation delta of the input independence rate (Yang & Kim 2019,
sec. 4.4 and app. A; docs/methods.md#bam-metrics).

Gradient descent on

    L = ||f(x + delta) - f(x)||_2 - eta1 ||delta||_2 + eta2 * sum[(x + delta - 1)^+ + (0 - x - delta)^+]

starting from the pixels of a pasted object (delta_0 = object pixels - scene pixels inside the
object's mask), with f the logits. The range penalty *adds* the overflow above 1 and below 0 so
that descent pulls x + delta back into [0, 1]; the public script subtracts it, which rewards
leaving the valid range (fixed here). The paper's eta3 term, a penalty on updates outside the
mask I_c, is replaced by its exact limit: gradients are multiplied by the mask, so delta is zero
outside it by construction. Optionally (`max_change`) delta stays within an L2 ball of radius
max_change * ||delta_0|| around delta_0. The result is clipped to the valid range once at the end.

Deviation: the paper takes plain steps (lambda = 500 on [0, 255] pixels); here the steps follow
Adam's rule (elementwise, so each image's delta is independent of its batch mates), because plain
steps barely reduced the output change (measured: docs/findings/bam.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class DeltaSettings:
    eta1: float = 0.01  # paper value
    eta2: float = 10.0  # range penalty weight (the paper gives none)
    steps: int = 40
    step_size: float = 0.03  # Adam's learning rate
    max_change: float | None = None

    def record(self) -> dict:
        return asdict(self)


def delta_loss(model, x, delta, f_x, s: DeltaSettings) -> torch.Tensor:
    """Per-image L of app. A (see module docstring), shape (B,)."""
    z = x + delta
    out = (model(z) - f_x).flatten(1).norm(dim=1)
    size = delta.flatten(1).norm(dim=1)
    over = (z - 1).clamp(min=0).flatten(1).sum(1) + (0 - z).clamp(min=0).flatten(1).sum(1)
    return out - s.eta1 * size + s.eta2 * over


def optimise_delta(
    model, x: torch.Tensor, delta0: torch.Tensor, mask: torch.Tensor, s: DeltaSettings
) -> tuple[torch.Tensor, dict]:
    """delta for a batch: `x` (B, 3, H, W) scenes in [0, 1], `delta0` the initial object pixels,
    `mask` (B, H, W) 0/1 the patch region. Returns delta (zero outside the mask, x + delta in
    [0, 1]) and per-image diagnostics: output change relative to ||f(x)||, before and after."""
    model.eval()
    m = mask.to(x.dtype)[:, None]
    with torch.no_grad():
        f_x = model(x)
        start_change = (model(x + delta0 * m) - f_x).flatten(1).norm(dim=1)
    delta0 = (delta0 * m).detach()
    delta = delta0.clone().requires_grad_(True)
    radius = None if s.max_change is None else s.max_change * delta0.flatten(1).norm(dim=1)
    opt = torch.optim.Adam([delta], lr=s.step_size)
    for _ in range(int(s.steps)):
        loss = delta_loss(model, x, delta, f_x, s).sum()
        (grad,) = torch.autograd.grad(loss, delta)  # the model's own gradients stay untouched
        delta.grad = grad * m  # no update outside the patch (the eta3 term's limit)
        opt.step()
        if radius is not None:
            with torch.no_grad():
                step = delta - delta0
                norm = step.flatten(1).norm(dim=1).clamp(min=1e-12)
                delta.copy_(delta0 + step * torch.clamp(radius / norm, max=1.0)[:, None, None, None])
    delta = delta.detach()
    with torch.no_grad():
        delta = ((x + delta).clamp(0, 1) - x) * m
        f_xd = model(x + delta)
        ref = f_x.flatten(1).norm(dim=1).clamp(min=1e-12)
        info = {
            "output_change": ((f_xd - f_x).flatten(1).norm(dim=1) / ref).numpy(),
            "output_change_start": (start_change / ref).numpy(),
            "delta_norm": delta.flatten(1).norm(dim=1).numpy(),
            "outside_mask_max": (delta.abs() * (1 - m)).flatten(1).amax(1).numpy(),
            "same_prediction": (f_xd.argmax(1) == f_x.argmax(1)).numpy(),
        }
    return delta.detach(), info
