"""MesoInception4 (Afchar et al., WIFS 2018): Meso4 with its first two conv blocks replaced by inception modules.

Each inception module runs a 1x1 branch and three 1x1 -> 3x3 branches whose 3x3 convs are dilated 1, 2 and 3, so
one module sees mesoscopic traces at several receptive fields; the rest of the network is Meso4's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.models.base import Detector
from advdf.models.mesonet import FeaturesHead, _conv_block, meso_head
from advdf.models.registry import register_detector


class InceptionLayer(nn.Module):
    """Four parallel branches concatenated on channels, then ReLU, BatchNorm and a 2x2 max-pool.

    Branch 1 is a 1x1 conv to ``a`` channels; branches 2-4 are a 1x1 conv (+ReLU) to ``b``/``c``/``d`` channels
    followed by a 3x3 conv with dilation 1/2/3 (padding equal to the dilation, so the spatial size is kept).
    The output has ``a + b + c + d`` channels at half the input resolution.
    """

    DILATIONS = (1, 2, 3)

    def __init__(self, c_in: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(c_in, a, 1)])
        for width, dilation in zip((b, c, d), self.DILATIONS, strict=True):
            self.branches.append(nn.Sequential(
                nn.Conv2d(c_in, width, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation),
            ))
        self.out_channels = a + b + c + d
        self.post = nn.Sequential(nn.ReLU(inplace=True), nn.BatchNorm2d(self.out_channels), nn.MaxPool2d(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.cat([branch(x) for branch in self.branches], dim=1))


class MesoInception4(FeaturesHead):
    """MesoInception4: inception(1,4,4,2) -> 11 ch, inception(2,4,4,2) -> 12 ch, 16@5x5 (pool 2), 16@5x5 (pool 4),
    dense 16, one logit.

    Args:
        input_size: square input side; must be a multiple of 32 (the total pooling factor).
    """

    def __init__(self, input_size: int = 256) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32:
            raise ConfigError(f"MesoInception4 needs a positive input size divisible by 32, got {input_size}")
        self.features = nn.Sequential(
            InceptionLayer(3, 1, 4, 4, 2),
            InceptionLayer(11, 2, 4, 4, 2),
            _conv_block(12, 16, 5, 2),
            _conv_block(16, 16, 5, 4),
        )
        self.head = meso_head(input_size)


@register_detector
def mesoinception4(pretrained: bool = False, input_size: int = 256, mean: Sequence[float] = (0.5,) * 3,
                   std: Sequence[float] = (0.5,) * 3) -> Detector:
    """MesoInception4 written in advdf; single-logit output exposed as two logits. No hub weights exist."""
    return Detector(
        MesoInception4(input_size), input_size=input_size, mean=tuple(mean), std=tuple(std), single_logit=True
    )
