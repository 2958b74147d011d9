"""`cbr_tiny`: the small DNN of Adebayo et al. 2022 ("Post hoc explanations may be ineffective for
detecting unknown spurious correlation"; docs/methods.md#models): five conv3x3-BN-ReLU-maxpool blocks and a linear
head on globally average-pooled features.

Channels per block: w, 2w, 4w, 4w, 8w (w = `width`, default 32, so D = 256); the paper gives no
widths. Deviation (docs/methods.md#models): the last block does not pool by default
(`pool_last=False`) so 64x64 inputs keep a 4x4 pre-pool map and 32x32 a 2x2 one, which activation
maps (NAM) and Grad-CAM need; `pool_last=True` gives the paper's five poolings (1x1 at 32x32).
Each block owns its ReLU module: hook-based attributions (Guided Backprop, DeepLift) break on
reused activation modules.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import nn

from ..errors import SpurlabError

# what timm.create_model passes to every entry point besides the model's own arguments
_TIMM_BOOKKEEPING = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "feature_cfg")


def timm_model_kwargs(kwargs: dict) -> dict:
    """Drop timm's bookkeeping arguments, keep the model's (unknown ones then fail loudly)."""
    return {k: v for k, v in kwargs.items() if k not in _TIMM_BOOKKEEPING}


class CBR(nn.Module):
    """timm's uniform API: `forward_features` (B, D, h, w), `forward_head`, `get_classifier`."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, drop_rate: float = 0.0,
                 pool_last: bool = False):  # fmt: skip
        super().__init__()
        if int(width) < 1:
            raise SpurlabError(f"arch_args.width: {width} must be a positive integer for cbr_tiny")
        chans = [width, 2 * width, 4 * width, 4 * width, 8 * width]
        blocks, c_in = [], in_chans
        for i, c in enumerate(chans):
            # bias-free conv: BatchNorm's shift makes a conv bias redundant
            layers = [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(chans) - 1 or pool_last:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.num_features = self.head_hidden_size = chans[-1]
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # dropout before the pre_logits exit, as in timm's heads: fc(forward_head(x, True)) is then
        # the same function as forward_head(x), in training mode too
        x = self.drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def cbr_tiny(pretrained: bool = False, **kwargs) -> CBR:
    if pretrained:
        raise SpurlabError("cbr_tiny: no pretrained weights exist (train it, or start from a local init_checkpoint)")
    return CBR(**timm_model_kwargs(kwargs))
