"""`cbr_tiny`: the small DNN of Adebayo et al. 2022 (SPEC 2): five conv3x3-BN-ReLU-maxpool
blocks and a linear head on globally pooled features.

Channels per block: w, 2w, 4w, 4w, 8w (w = `width`). The last block does not pool by default
(`pool_last=False`) so 64x64 inputs keep a 4x4 pre-pool map for activation maps and Grad-CAM;
`pool_last=True` gives the paper's five poolings. Each block owns its ReLU module: hook-based
attributions (Guided Backprop) break on reused activation modules.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import nn


class CBR(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, drop_rate: float = 0.0,
                 pool_last: bool = False, **_):  # fmt: skip
        super().__init__()
        chans = [width, 2 * width, 4 * width, 4 * width, 8 * width]
        blocks, c_in = [], in_chans
        for i, c in enumerate(chans):
            layers = [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(chans) - 1 or pool_last:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.num_features = chans[-1]
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def cbr_tiny(pretrained: bool = False, **kwargs) -> CBR:
    return CBR(**kwargs)
