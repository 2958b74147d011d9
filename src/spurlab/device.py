"""Device selection: CUDA when present (bf16 autocast, channels_last), else CPU."""

from __future__ import annotations

import contextlib

import torch

from .errors import SpurlabError


def pick_device(requested: str = "auto") -> torch.device:
    """ "auto": CUDA when available, else CPU; "cpu"; "cuda" or "cuda:N" (an error without that GPU)."""
    requested = str(requested)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    index = requested[len("cuda:") :] if requested.startswith("cuda:") else None
    if requested != "cuda" and not (index and index.isdigit()):
        raise SpurlabError(f"compute.device: unknown device '{requested}' (auto, cpu, cuda, cuda:N)")
    if not torch.cuda.is_available():
        raise SpurlabError(f"compute.device: '{requested}' requested but no CUDA device is available")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise SpurlabError(
            f"compute.device: '{requested}' requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return torch.device(requested)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (fp32 keeps CPU runs bitwise reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to `device`; channels_last on CUDA only (faster convolutions there; on 2 CPU threads
    no uniform gain, bench/memory_format.py)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
