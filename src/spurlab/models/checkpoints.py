"""Checkpoint import (SPEC 2): plain state dicts and Madry `robustness` checkpoints into a timm
model in our format. Nothing is downloaded: the file must be local.

Madry layout: ``{"model": {...}, "epoch": ...}`` whose keys are ``module.model.*`` (the network,
torchvision names, which timm's ResNets share), ``module.attacker.*`` (a copy for the attacker:
dropped) and ``module.normalizer.new_mean`` / ``new_std`` (shape (3, 1, 1): the normalisation).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import SpurlabError
from ..io import sha256_file
from .factory import IMAGENET_MEAN, IMAGENET_STD, Classifier, create_model, load_state_strict

MADRY_PREFIX = "module.model."


def _unwrap(obj, path):
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    raise SpurlabError(f"{path}: not a state dict or checkpoint dict")


def import_checkpoint(path: str | os.PathLike, arch: str = "resnet50", num_classes: int = 1000, kind: str = "auto",
                      input_size: int = 224) -> tuple[Classifier, dict]:  # fmt: skip
    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: checkpoint not found (weights are never downloaded; give a local checkpoint_path)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe pickles
        raise SpurlabError(f"{path}: cannot be read as a weights-only torch checkpoint ({type(e).__name__}: {e})") from e
    state = _unwrap(raw, path)
    madry = any(k.startswith(MADRY_PREFIX) for k in state)
    if kind == "auto":
        kind = "madry" if madry else "state_dict"
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if kind == "madry":
        if not madry:
            raise SpurlabError(f"{path}: no '{MADRY_PREFIX}*' tensors; not a robustness-library checkpoint")
        try:
            mean = state["module.normalizer.new_mean"].flatten().tolist()
            std = state["module.normalizer.new_std"].flatten().tolist()
        except KeyError as e:
            raise SpurlabError(f"{path}: tensor {e.args[0]} missing (the normaliser's mean/std)") from e
        state = {k[len(MADRY_PREFIX):]: v for k, v in state.items() if k.startswith(MADRY_PREFIX)}
    elif any(k.startswith("module.") for k in state):
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    net = create_model(arch, num_classes=num_classes)
    load_state_strict(net, state, path)
    model = Classifier(net, arch, input_size, mean, std).eval()
    info = {"layout": kind, "sha256": sha256_file(path), "path": str(path)}
    if isinstance(raw, dict) and "epoch" in raw:
        info["epoch"] = int(raw["epoch"])
    return model, info
