"""Normalising raw attributions to maps in [0, 1] before they are compared (docs/methods.md#attribution-methods).

Two named normalisers, both channel reductions followed by the visualisation of Smilkov et al.
2017 / Sundararajan et al. 2017 (subtract the minimum, cap at the 99th percentile, scale to [0, 1]):

- ``bam`` (Yang & Kim 2019, sec. 5 and app. E): the *positive* part summed over channels (their
  work studies false positives, so negative evidence is dropped).
- ``adebayo`` (Adebayo et al. 2022): |attribution| summed over channels.

A map that is constant (nothing above its minimum) becomes all zeros rather than NaN.
"""

from __future__ import annotations

import torch

from ..errors import SpurlabError

PERCENTILE = 99.0


def _reduce_bam(a: torch.Tensor) -> torch.Tensor:
    return a.clamp(min=0).sum(1)


def _reduce_adebayo(a: torch.Tensor) -> torch.Tensor:
    return a.abs().sum(1)


NORMALISERS = {"bam": _reduce_bam, "adebayo": _reduce_adebayo}


def scale_unit(m: torch.Tensor, percentile: float = PERCENTILE) -> torch.Tensor:
    """(B, H, W) -> [0, 1]: minus the per-map minimum, capped at the per-map percentile, divided by it.

    Where the percentile equals the minimum (sparse maps, e.g. Grad-CAM peaks on few pixels) the
    maximum is the cap instead, so a map with any signal keeps it.
    """
    flat = m.reshape(len(m), -1).double()
    flat = flat - flat.min(1, keepdim=True).values
    cap = torch.quantile(flat, percentile / 100.0, dim=1, keepdim=True)
    cap = torch.where(cap > 0, cap, flat.max(1, keepdim=True).values)
    out = torch.where(cap > 0, flat / cap.clamp(min=1e-300), torch.zeros_like(flat)).clamp(0, 1)
    return out.reshape(m.shape).float()


def normalise(attributions: torch.Tensor, name: str) -> torch.Tensor:
    """(B, C, H, W) raw attributions -> (B, H, W) maps in [0, 1] with normaliser `name`."""
    if name not in NORMALISERS:
        raise SpurlabError(f"normaliser '{name}': expected one of {', '.join(NORMALISERS)}")
    if attributions.ndim != 4:
        raise SpurlabError(
            f"normaliser '{name}': expected attributions of shape (B, C, H, W), got {tuple(attributions.shape)}"
        )
    return scale_unit(NORMALISERS[name](attributions.detach().float()))
