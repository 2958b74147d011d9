"""Saliency methods through captum with the papers' settings, not captum's defaults (docs/methods.md#attribution-methods).

Method keys (the same everywhere: tables, config, summaries):

- ``gradient``: vanilla gradient (Simonyan et al. 2013), captum `Saliency(abs=False)` (captum's
  default `abs=True` would hide the sign the BAM normaliser keeps).
- ``smoothgrad``: SmoothGrad (Smilkov et al. 2017) of the vanilla gradient, captum `NoiseTunnel`;
  sigma = 0.15 x the input range (images are in [0, 1], so 0.15) and 25-50 samples in the paper;
  captum's defaults (sigma 1.0, 5 samples) are wrong here.
- ``integrated_gradients``: Integrated Gradients (Sundararajan et al. 2017, eq. 1) from a black
  baseline; the quadrature (`riemann_trapezoid` as in the paper, or captum's `gausslegendre`) and
  the number of steps are settings, recorded with every result.
- ``ig_smoothgrad``: IG-SG, SmoothGrad over Integrated Gradients (Yang & Kim 2019, app. E).
- ``gradient_x_input``: gradient times input (captum `InputXGradient`).
- ``guided_backprop``: Guided Backprop (Springenberg et al. 2014). captum overrides the backward
  pass of `nn.ReLU` modules only: on models with other activations (GELU, SiLU ...) the result is
  meaningless, so it is refused.
- ``gradcam``: Grad-CAM (Selvaraju et al. 2017, eqs. 1-2) on the pre-pool feature map (or the layer
  `gradcam_layer` names), with the ReLU of eq. 2 (`relu_attributions=True`; captum's default omits
  it), upsampled bilinearly.
- ``guided_gradcam``: Guided Backprop times the upsampled Grad-CAM (captum `GuidedGradCam`).

Every method is batched (`internal_batch_size`, `nt_samples_batch_size`). SmoothGrad noise is drawn
from torch's generator seeded per batch, so the same seed gives the same maps on CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..errors import SpurlabError

METHODS = (
    "gradient",
    "smoothgrad",
    "integrated_gradients",
    "ig_smoothgrad",
    "gradient_x_input",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
)
IG_METHODS = ("riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre")
# activations captum's modified-ReLU methods cannot see (it hooks nn.ReLU only)
_NON_RELU = ("GELU", "SiLU", "Swish", "Mish", "Hardswish", "ELU", "LeakyReLU", "PReLU", "Softplus", "Tanh", "Sigmoid")


@dataclass(frozen=True)
class AttributionSettings:
    """Settings of the methods; defaults are the papers' values (docs/methods.md#attribution-methods).

    - `smoothgrad_samples` 25 and `smoothgrad_sigma` 0.15 (Smilkov et al.: 10-20% of the input
      range, 25-50 samples; sigma is a fraction of the range [0, 1]).
    - `ig_steps` 50 and `ig_method` riemann_trapezoid (Sundararajan et al.: 20-300 Riemann steps).
    - `ig_sg_samples` / `ig_sg_steps`: IG-SG's noise samples and IG steps per sample (the paper
      does not give them; defaults as SmoothGrad and IG).
    - `batch_size`: images per captum call; gradients of noise samples / IG steps are taken
      `batch_size` at a time.
    - `gradcam_layer`: Grad-CAM's (and Guided Grad-CAM's) layer, a module of the network
      (`blocks.2`); None: the pre-pool map, Selvaraju et al.'s last convolutional layer. At 64 px that
      map is 4x4 (a cell is a quarter of the image); the papers' ResNet-50 at 224 px has 7x7.
    """

    smoothgrad_samples: int = 25
    smoothgrad_sigma: float = 0.15
    ig_steps: int = 50
    ig_method: str = "riemann_trapezoid"
    ig_sg_samples: int = 25
    ig_sg_steps: int = 50
    batch_size: int = 32
    gradcam_layer: str | None = None

    def __post_init__(self):
        if self.ig_method not in IG_METHODS:
            raise SpurlabError(f"ig_method '{self.ig_method}': expected one of {', '.join(IG_METHODS)}")
        for k in ("smoothgrad_samples", "ig_steps", "ig_sg_samples", "ig_sg_steps", "batch_size"):
            if int(getattr(self, k)) < 1:
                raise SpurlabError(f"attribution setting {k}: must be >= 1")

    def record(self) -> dict:
        return asdict(self)


class _FeatureMap(nn.Module):
    """The pre-pool map as a module, so captum's layer methods (Grad-CAM, TCAV) can hook it."""

    def __init__(self, clf: nn.Module):
        super().__init__()
        self.clf = clf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clf.feature_map(x)


class AttributionModel(nn.Module):
    """A private eval-mode copy of a `spurlab.models.Classifier` for attribution.

    `feature_map` is the module whose output is the pre-pool map (Grad-CAM's layer). ReLUs run
    out of place in the copy: captum's backward hooks fail on in-place activations.
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        clf = copy.deepcopy(classifier).eval()
        for p in clf.parameters():
            p.requires_grad_(False)
        for m in clf.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.clf = clf
        self.feature_map = _FeatureMap(clf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clf.net.forward_head(self.feature_map(x))

    def layer(self, name: str | None) -> nn.Module:
        """The network's module `name` (e.g. `blocks.2`); None: the pre-pool map."""
        if name is None:
            return self.feature_map
        try:
            return self.clf.net.get_submodule(name)
        except AttributeError:
            raise SpurlabError(f"gradcam_layer '{name}': not a module of the network") from None

    def only_relu(self) -> bool:
        return not any(type(m).__name__ in _NON_RELU for m in self.modules())


def attribute(am: AttributionModel, x: torch.Tensor, target: torch.Tensor, method: str,
              settings: AttributionSettings, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Raw attributions of one batch: (B, 3, H, W), or (B, 1, H, W) for Grad-CAM.

    `x` float (B, 3, H, W) in [0, 1], `target` (B,) class indices. `seed` seeds the SmoothGrad noise.
    """
    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Saliency,
    )

    s = settings
    x = x.detach().clone().requires_grad_(True)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device)
    bs = int(s.batch_size)
    black = torch.zeros_like(x)
    if method == "gradient":
        out = Saliency(am).attribute(x, target=target, abs=False)
    elif method == "smoothgrad":
        torch.manual_seed(seed)
        out = NoiseTunnel(Saliency(am)).attribute(x, nt_type="smoothgrad", nt_samples=s.smoothgrad_samples,
                                                  nt_samples_batch_size=bs, stdevs=float(s.smoothgrad_sigma),
                                                  target=target, abs=False)  # fmt: skip
    elif method == "integrated_gradients":
        out = IntegratedGradients(am).attribute(x, baselines=black, target=target, n_steps=s.ig_steps,
                                                method=s.ig_method, internal_batch_size=bs * 4)  # fmt: skip
    elif method == "ig_smoothgrad":
        torch.manual_seed(seed)
        out = NoiseTunnel(IntegratedGradients(am)).attribute(
            x, nt_type="smoothgrad", nt_samples=s.ig_sg_samples, nt_samples_batch_size=1,
            stdevs=float(s.smoothgrad_sigma), baselines=0.0, target=target, n_steps=s.ig_sg_steps,
            method=s.ig_method, internal_batch_size=bs * 4,
        )  # fmt: skip
    elif method == "gradient_x_input":
        out = InputXGradient(am).attribute(x, target=target)
    elif method in ("guided_backprop", "guided_gradcam") and not am.only_relu():
        raise SpurlabError(f"{method}: the model has non-ReLU activations; captum's Guided Backprop overrides "
                           "nn.ReLU only, so its maps would be meaningless (docs/methods.md#attribution-methods)")  # fmt: skip
    elif method == "guided_backprop":
        out = GuidedBackprop(am).attribute(x, target=target)
    elif method == "gradcam":
        cam = LayerGradCam(am, am.layer(s.gradcam_layer)).attribute(x, target=target, relu_attributions=True)
        out = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    elif method == "guided_gradcam":
        out = GuidedGradCam(am, am.layer(s.gradcam_layer)).attribute(x, target=target, interpolate_mode="bilinear")
    else:
        raise SpurlabError(f"attribution method '{method}': expected one of {', '.join(METHODS)}")
    return out.detach()


def attribute_batched(am: AttributionModel, images: np.ndarray, targets: np.ndarray, methods, settings: AttributionSettings,
                      seed: int = 0, progress: bool = False, desc: str = "attributions") -> Iterator[tuple[int, dict]]:  # fmt: skip
    """Yield `(start, {method: raw attributions})` over batches of `images`: uint8 (N, H, W, 3),
    or float (N, 3, H, W) in [0, 1] (perturbed images that must not be re-quantised).

    The SmoothGrad seed of a batch is (seed, start): results do not depend on how many batches
    were computed before.
    """
    from tqdm import tqdm

    n, bs = len(images), int(settings.batch_size)
    with tqdm(total=n * len(methods), desc=desc, unit="map", disable=not progress, mininterval=5.0) as bar:
        for start in range(0, n, bs):
            x = _as_float(images[start : start + bs])
            t = torch.as_tensor(np.asarray(targets[start : start + bs]), dtype=torch.long)
            out = {}
            for m in methods:
                out[m] = attribute(am, x, t, m, settings, seed=int(seed) * 1_000_003 + start)
                bar.update(len(x))
            yield start, out


def _as_float(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor) and batch.dtype != torch.uint8:
        return batch.detach().float()
    arr = np.asarray(batch)
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
