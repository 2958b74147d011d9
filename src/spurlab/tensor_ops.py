"""Small tensor helpers shared across layers (models, discover): torch only, no spurlab imports."""

from __future__ import annotations

import torch


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each row of `t` (B, ...) over all its other dimensions, floored at 1e-12
    (safe to divide by), shaped (B, 1, ..., 1) to broadcast against `t`."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))
