"""Checkpoint import (docs/methods.md#models): plain state dicts and Madry `robustness` checkpoints into a timm
model wrapped as a `Classifier`. Nothing is downloaded: the file must be local, and it is read with
``torch.load(weights_only=True)`` (no code in a checkpoint is ever executed).

Layouts:
- ``madry``: ``{"model": {...}, "epoch": ..., "optimizer": ..., "schedule": ...}`` (robustness
  library, saved from a DataParallel ``AttackerModel``) whose keys are ``module.model.*`` (the
  network, torchvision names: conv1, bn1, layer1..4, fc), ``module.attacker.*`` (the attacker's copy:
  dropped) and ``module.normalizer.new_mean`` / ``new_std`` (shape (3, 1, 1): the normalisation the
  network was trained behind, used as the Classifier's mean/std). A file saved without DataParallel
  (no ``module.`` prefix) is accepted too.
- ``state_dict``: the network's own keys, optionally nested under "state_dict" or "model" and/or
  prefixed by ``module.``; mean/std default to ImageNet's unless given.
timm's ResNets share torchvision's parameter names and shapes (tests check that against
torchvision's resnet50), so both load strictly into ``timm.create_model("resnet50")``.
Any missing/unexpected key or shape mismatch is an error naming the first offending tensor.
The file's sha256 goes into `info`: every later cache is keyed by it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import SpurlabError
from ..io import sha256_file
from .factory import IMAGENET_MEAN, IMAGENET_STD, Classifier, create_model, load_state_strict

KINDS = ("auto", "madry", "state_dict")


def _unwrap(obj, path) -> dict:
    if not isinstance(obj, dict):
        raise SpurlabError(f"{path}: holds a {type(obj).__name__}, not a state dict or checkpoint dict")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def _local_file(path: Path) -> Path:
    if not path.is_file():
        raise SpurlabError(f"{path}: checkpoint not found (weights are never downloaded; give a local file)")
    return path


def _load_weights_only(path: Path):
    _local_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe pickles
        raise SpurlabError(f"{path}: {unreadable_checkpoint(path, e)}") from e


def unreadable_checkpoint(path: Path, e: Exception) -> str:
    """Why torch.load failed on `path`, in words: an empty file, a file that is neither of torch's
    two formats (a zip archive, or a pickle from torch < 1.6), a damaged or truncated zip, or
    torch's own message (a weights-only refusal names the global it refused)."""
    import zipfile

    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not head:
        return "cannot be read as a torch checkpoint: empty file"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            return "cannot be read as a torch checkpoint: damaged or truncated (its zip archive does not open)"
        if bad is not None:
            return f"cannot be read as a torch checkpoint: damaged (entry {bad} of its zip archive fails its CRC check)"
    elif head[0] != 0x80:  # every pickle protocol >= 2 starts with PROTO (0x80)
        return "cannot be read as a torch checkpoint: not a torch file (neither a zip archive nor a pickle)"
    return f"cannot be read as a weights-only torch checkpoint ({type(e).__name__}: {e})"


def _strip_prefix(state: dict, prefix: str) -> tuple[dict, str]:
    """`state` without `prefix` when every key carries it (DataParallel's `module.`), and the prefix
    that was stripped ("" if none)."""
    if not (state and all(isinstance(k, str) and k.startswith(prefix) for k in state)):
        return state, ""
    return {k[len(prefix) :]: v for k, v in state.items()}, prefix


def _is_madry(state: dict) -> bool:
    """The robustness library's AttackerModel: `model.*` beside `normalizer.*` or `attacker.*`."""
    return any(k.startswith("model.") for k in state) and any(k.startswith(("normalizer.", "attacker.")) for k in state)


def _three(value, name: str, path) -> list[float]:
    if not isinstance(value, torch.Tensor) or value.numel() != 3:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise SpurlabError(f"{path}: tensor {name} has shape {shape}, expected 3 values (one per channel)")
    return [float(v) for v in value.flatten()]


def import_checkpoint(path: str | os.PathLike, arch: str = "resnet50", num_classes: int = 1000, kind: str = "auto",
                      input_size: int = 224, mean=None, std=None,
                      arch_args: dict | None = None) -> tuple[Classifier, dict]:  # fmt: skip
    """Load a local checkpoint into ``Classifier(timm.create_model(arch, num_classes))`` (eval mode).

    `kind`: "auto" (detect), "madry" or "state_dict". `mean`/`std`, when given, override the
    checkpoint's normaliser (madry) or the ImageNet default (state_dict). `arch_args`: keyword
    arguments of the architecture (the model keeps them; `save_model` records them in meta.json).
    Returns the model and `info`: layout, sha256, path, mean, std, normalisation (where mean/std
    came from), epoch if stored.
    """
    path = Path(path)
    if kind not in KINDS:
        raise SpurlabError(f"checkpoint layout '{kind}': expected one of {', '.join(KINDS)}")
    raw = _load_weights_only(path)
    state, prefix = _strip_prefix(_unwrap(raw, path), "module.")
    if kind == "auto":
        kind = "madry" if _is_madry(state) else "state_dict"
    norm_mean, norm_std, source = IMAGENET_MEAN, IMAGENET_STD, "imagenet_default"
    if kind == "madry":
        if not any(k.startswith("model.") for k in state):
            raise SpurlabError(f"{path}: no '{prefix}model.*' tensors; not a robustness-library checkpoint")
        for name in ("normalizer.new_mean", "normalizer.new_std"):
            if name not in state:
                raise SpurlabError(f"{path}: tensor {prefix}{name} missing (the normaliser's mean/std)")
        norm_mean = _three(state["normalizer.new_mean"], prefix + "normalizer.new_mean", path)
        norm_std = _three(state["normalizer.new_std"], prefix + "normalizer.new_std", path)
        source = "checkpoint"
        # keep the network only: attacker.* (a second copy of it) and normalizer.* are dropped
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if mean is not None or std is not None:
        norm_mean = list(mean) if mean is not None else norm_mean
        norm_std = list(std) if std is not None else norm_std
        source = "argument"
    net = create_model(arch, num_classes=num_classes, **(arch_args or {}))
    load_state_strict(net, state, path)
    model = Classifier(net, arch, input_size=input_size, mean=norm_mean, std=norm_std, arch_args=arch_args).eval()
    info = {
        "layout": kind,
        "sha256": sha256_file(path),
        "path": str(path),
        "arch": arch,
        "num_classes": num_classes,
        "mean": [float(v) for v in norm_mean],
        "std": [float(v) for v in norm_std],
        "normalisation": source,
    }
    epoch = raw.get("epoch") if isinstance(raw, dict) else None
    if isinstance(epoch, (int, float)) or (isinstance(epoch, torch.Tensor) and epoch.numel() == 1):
        info["epoch"] = int(epoch)
    return model, info


def read_network_state(path: str | os.PathLike) -> dict:
    """A network's tensors from a local file: a spurlab `model.safetensors` (the Classifier's
    `net.*` tensors; its mean/std are left out) or a plain state dict (`.safetensors`, or a torch
    file read weights-only, optionally nested under "state_dict"/"model" and prefixed `module.`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(_local_file(path)))
        except (SafetensorError, OSError) as e:
            raise SpurlabError(f"{path}: unreadable safetensors file ({e})") from e
        if {"mean", "std"} <= state.keys():  # a spurlab Classifier: the network is under net.*
            state = {k: v for k, v in state.items() if k not in ("mean", "std")}
            state, prefix = _strip_prefix(state, "net.")
            if not prefix:
                raise SpurlabError(f"{path}: has mean/std but tensors outside net.*; not a spurlab model")
        return state
    return _strip_prefix(_unwrap(_load_weights_only(path), path), "module.")[0]


def init_from_checkpoint(model: Classifier, path: str | os.PathLike) -> dict:
    """Warm start: copy the network weights of a local checkpoint (`read_network_state`) into
    `model` before training. Every tensor must match by name and shape, except the classification
    head: one made for another number of classes is left at its (seeded) initialisation, as when
    fine-tuning to a new task. Returns the provenance recorded in the trained model's meta: path,
    sha256, and whether the head was "loaded" or "reinitialised"."""
    path = Path(path)
    state = read_network_state(path)
    own = model.net.state_dict()
    head_params = {id(p) for p in model.net.get_classifier().parameters()}
    head = {n for n, p in model.net.named_parameters() if id(p) in head_params}
    mismatched_head = {k for k in head if k in state and tuple(state[k].shape) != tuple(own[k].shape)}
    load_state_strict(model.net, state | {k: own[k] for k in mismatched_head}, path)
    return {"path": str(path), "sha256": sha256_file(path), "head": "reinitialised" if mismatched_head else "loaded"}
