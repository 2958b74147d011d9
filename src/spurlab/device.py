"""Device selection: CUDA when present (bf16 autocast, channels_last), else CPU."""

from __future__ import annotations

import contextlib

import torch

from .errors import SpurlabError


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise SpurlabError("compute.device: 'cuda' requested but no CUDA device is available")
    if requested not in ("cpu", "cuda"):
        raise SpurlabError(f"compute.device: unknown device '{requested}' (auto, cpu, cuda)")
    return torch.device(requested)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (fp32 keeps CPU runs bitwise reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
