"""One factory for every model (timm's registry) and the wrapper every stage uses (docs/methods.md#models).

`Classifier` owns the input normalisation (images enter as float in [0, 1]) and exposes what the
papers read: the pre-pool feature map, the penultimate features phi(x), the logits and the head
(W, b), with ``logits == features @ W.T + b``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import timm
import torch
from torch import nn

from ..errors import SpurlabError
from ..io import atomic_path, code_provenance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_model(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """Any timm architecture, randomly initialised: never with downloaded weights. Weights come
    from training, a warm start (`models.<name>.init_checkpoint`) or an import (`checkpoint`).
    timm's own `checkpoint_path` is refused: architecture arguments are recorded in meta.json and
    applied again at every load, so a trained model would depend on, and be overwritten by, its
    initialisation file."""
    if not isinstance(arch, str) or not timm.is_model(arch):
        raise SpurlabError(f"model arch '{arch}': not a timm or spurlab architecture")
    if kwargs.pop("pretrained", False):
        raise SpurlabError(
            f"model arch '{arch}': pretrained weights are never downloaded; give a local init_checkpoint or checkpoint"
        )
    if "checkpoint_path" in kwargs:
        raise SpurlabError(
            f"model arch '{arch}': arch_args.checkpoint_path is not an architecture argument; "
            "start training from a local file with models.<name>.init_checkpoint"
        )
    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise SpurlabError(f"model arch '{arch}': bad arch_args {kwargs} ({e})") from e


def build_classifier(arch: str, num_classes: int, input_size: int, arch_args: dict | None = None,
                     mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Classifier:  # fmt: skip
    """The one way to make a Classifier from its description (training and loading alike)."""
    net = create_model(arch, num_classes=num_classes, **(arch_args or {}))
    return Classifier(net, arch, input_size=input_size, mean=mean, std=std, arch_args=arch_args)


class Classifier(nn.Module):
    """A timm-API network plus normalisation: `feature_map`, `features`, `logits`, `head`.

    Attributes: `net` (the timm-API network), `arch`, `arch_args`, `num_classes`, `num_features`
    (D), `input_size` (the side the model was trained at), `mean`/`std` (buffers (1, 3, 1, 1), saved
    with the weights). Images enter as float (B, 3, H, W) in [0, 1].
    """

    def __init__(
        self, net: nn.Module, arch: str, input_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, arch_args=None
    ):
        super().__init__()
        for name, v in (("mean", mean), ("std", std)):
            if len(v) != 3 or (name == "std" and min(v) <= 0):
                raise SpurlabError(
                    f"model {arch}: {name} {list(v)} must be 3 values" + (" > 0" if name == "std" else "")
                )
        self.net = net
        self.arch = arch
        self.arch_args = dict(arch_args or {})
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def num_classes(self) -> int:
        return self.net.get_classifier().out_features

    @property
    def num_features(self) -> int:
        return self.net.num_features

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-pool map (B, D, h, w) of images in [0, 1]."""
        return self.net.forward_features((x - self.mean) / self.std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the (B, D) input of the last linear layer."""
        return self.net.forward_head(self.feature_map(x), pre_logits=True)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.features(x)
        return phi, self.net.get_classifier()(phi)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b): the last layer's live parameters, (C, D) and (C,) (detach before editing)."""
        fc = self.net.get_classifier()
        bias = fc.bias if fc.bias is not None else torch.zeros(fc.out_features, device=fc.weight.device)
        return fc.weight, bias


def save_model(model: Classifier, directory: str | os.PathLike, meta: dict) -> None:
    """`model.safetensors` (weights and normalisation) and `meta.json`, each written atomically.

    meta.json holds what `load_model` rebuilds the model from (arch, arch_args, num_classes,
    input_size, mean, std) plus every key of `meta` (class_names, training record ...); the
    model's own values win over same-named keys of `meta`, and so do `spurlab_version` and
    `code_sha256`, the code that wrote it (`spurlab.io.code`).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    full = dict(meta)
    full.update(
        arch=model.arch,
        arch_args=model.arch_args,
        num_classes=model.num_classes,
        num_features=model.num_features,
        input_size=model.input_size,
        mean=model.mean.flatten().tolist(),
        std=model.std.flatten().tolist(),
        **code_provenance(),
    )
    names = full.get("class_names")
    if names is not None and len(names) != model.num_classes:
        raise SpurlabError(f"{directory / 'meta.json'}: {len(names)} class_names for a {model.num_classes}-class model")
    try:  # serialise before writing anything: a bad meta must not leave weights without meta.json
        text = json.dumps(full, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as e:
        raise SpurlabError(f"{directory / 'meta.json'}: meta is not JSON-serialisable ({e})") from e
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"arch": model.arch})
    with atomic_path(directory / "meta.json") as tmp:
        tmp.write_text(text)


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """Rebuild from meta.json, load the weights strictly; the model comes back in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    for name in ("meta.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise SpurlabError(f"{directory / name}: missing (not a spurlab model directory)")
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except ValueError as e:
        raise SpurlabError(f"{directory / 'meta.json'}: not valid JSON ({e})") from e
    missing = [k for k in ("arch", "num_classes", "input_size", "mean", "std") if k not in meta]
    if missing:
        raise SpurlabError(f"{directory / 'meta.json'}: key '{missing[0]}' missing")
    model = build_classifier(
        meta["arch"],
        meta["num_classes"],
        input_size=meta["input_size"],
        arch_args=meta.get("arch_args"),
        mean=meta["mean"],
        std=meta["std"],
    )
    try:
        state = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as e:
        raise SpurlabError(f"{directory / 'model.safetensors'}: unreadable ({e})") from e
    load_state_strict(model, state, directory / "model.safetensors")
    return model.to(device).eval(), meta


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted classes (int64 numpy) of uint8 (N, H, W, 3) images: CPU, eval mode, in batches."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def load_state_strict(model: nn.Module, state: dict, source) -> None:
    """Load a state dict; a missing/unexpected key, non-tensor or shape mismatch names the tensor."""
    own = model.state_dict()
    for k, v in state.items():
        if k not in own:
            raise SpurlabError(f"{source}: unexpected tensor {k} (not in the {type(model).__name__} model)")
        if not isinstance(v, torch.Tensor):
            raise SpurlabError(f"{source}: entry {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(own[k].shape):
            raise SpurlabError(f"{source}: tensor {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    missing = [k for k in own if k not in state]
    if missing:
        raise SpurlabError(f"{source}: tensor {missing[0]} missing ({len(missing)} missing in all)")
    model.load_state_dict(state, strict=True)
