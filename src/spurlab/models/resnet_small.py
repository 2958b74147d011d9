"""Small-input ResNets (CIFAR-style stem: one 3x3 convolution, no max-pool) in timm's `ResNet`.

`resnet10_small` (BasicBlock x [1, 1, 1, 1]) and `resnet18_small` ([2, 2, 2, 2]); `width` sets
the first stage's channels (64 in torchvision; 16-32 keep CPU training of 64x64 images to
minutes), `stem_stride` 2 halves the resolution once more (64x64 inputs -> 4x4 final map).
timm's ResNet already gives every block its own activation modules.
"""

from __future__ import annotations

from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from ..errors import SpurlabError


def _small_resnet(layers, num_classes=10, in_chans=3, width=32, stem_stride=1, drop_rate=0.0, **kwargs) -> ResNet:
    if width % 2:
        raise SpurlabError(f"arch_args.width: {width} must be even for the small ResNets")
    # timm's factory passes its own bookkeeping (pretrained_cfg, cache_dir ...) to every model fn
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith(("pretrained_cfg", "cache_dir", "feature_cfg"))}
    widths = (width, 2 * width, 4 * width, 8 * width)
    # a "deep" stem is the only one whose width follows stem_width (inplanes = 2 * stem_width);
    # its three convolutions are then replaced by one 3x3
    model = ResNet(BasicBlock, layers, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   stem_type="deep", stem_width=width // 2, channels=widths, **kwargs)  # fmt: skip
    model.conv1 = nn.Conv2d(in_chans, width, 3, stride=stem_stride, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model
def resnet10_small(pretrained: bool = False, **kwargs) -> ResNet:
    return _small_resnet([1, 1, 1, 1], **kwargs)


@register_model
def resnet18_small(pretrained: bool = False, **kwargs) -> ResNet:
    return _small_resnet([2, 2, 2, 2], **kwargs)
