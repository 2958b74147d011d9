"""Small-input ResNets (He et al. 2016, the CIFAR-style variant: one 3x3 stem convolution, no
max-pool) built from timm's `ResNet` with BasicBlocks (docs/methods.md#models: local archs in timm's registry).

`resnet10_small` (BasicBlock x [1, 1, 1, 1]) and `resnet18_small` ([2, 2, 2, 2]). `width` sets the
first stage's channels (64 in torchvision; 16-32 keep CPU training of 64x64 images to minutes;
stages are w, 2w, 4w, 8w so D = 8w); `stem_stride` 2 halves the resolution once more (64x64
inputs -> 4x4 final map instead of 8x8). timm's ResNet gives every block its own activation
modules, so hook-based attributions are safe; the timm API (`forward_features`, `forward_head`,
`num_features`, `get_classifier`) is inherited unchanged.
"""

from __future__ import annotations

import warnings

from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from ..errors import SpurlabError
from .cbr import timm_model_kwargs


def _small_resnet(name, layers, pretrained=False, num_classes=10, in_chans=3, width=32, stem_stride=1, drop_rate=0.0,
                  **kwargs) -> ResNet:  # fmt: skip
    if pretrained:
        raise SpurlabError(f"{name}: no pretrained weights exist (train it, or start from a local init_checkpoint)")
    if int(width) < 2 or width % 2:
        raise SpurlabError(f"arch_args.width: {width} must be even (and >= 2) for the small ResNets")
    if stem_stride not in (1, 2):
        raise SpurlabError(f"arch_args.stem_stride: {stem_stride} must be 1 or 2")
    widths = (width, 2 * width, 4 * width, 8 * width)
    # timm's ResNet fixes the stem width at 64 except for a "deep" stem (inplanes = 2 * stem_width);
    # build that one, then replace its three convolutions by one 3x3 (the throwaway stem can have
    # zero-channel convolutions for tiny widths, whose init warns)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        model = ResNet(BasicBlock, layers, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                       stem_type="deep", stem_width=width // 2, channels=widths, **timm_model_kwargs(kwargs))  # fmt: skip
    model.conv1 = nn.Conv2d(in_chans, width, 3, stride=stem_stride, padding=1, bias=False)
    model.maxpool = nn.Identity()
    # keep timm's feature_info truthful (features_only / forward_intermediates read the reductions)
    # (timm counts a stride-4 stem; ours is stem_stride with no max-pool; a dilated last stage
    # under output_stride=16 keeps its input's reduction)
    for i, info in enumerate(model.feature_info):
        info["reduction"] = stem_stride if i == 0 else info["reduction"] * stem_stride // 4
    return model


@register_model
def resnet10_small(pretrained: bool = False, **kwargs) -> ResNet:
    return _small_resnet("resnet10_small", [1, 1, 1, 1], pretrained, **kwargs)


@register_model
def resnet18_small(pretrained: bool = False, **kwargs) -> ResNet:
    return _small_resnet("resnet18_small", [2, 2, 2, 2], pretrained, **kwargs)
