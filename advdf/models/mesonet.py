"""MesoNet (Afchar et al., WIFS 2018): a shallow CNN for mesoscopic face-forgery traces."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.models.base import Detector
from advdf.models.registry import register_detector


def _conv_block(c_in: int, c_out: int, kernel: int, pool: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(c_out),
        nn.MaxPool2d(pool, pool),
    )


def meso_head(input_size: int) -> nn.Sequential:
    """The Meso networks' classifier over 16 maps at 1/32 of the input side: dropout, dense 16, LeakyReLU 0.1,
    dropout, one logit."""
    side = input_size // 32
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(16 * side * side, 16),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.5),
        nn.Linear(16, 1),
    )


class FeaturesHead(nn.Module):
    """``forward = forward_head(forward_features(x))`` over ``self.features`` and ``self.head``."""

    features: nn.Module
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class Meso4(FeaturesHead):
    """Meso4: four conv blocks (8@3x3, 8@5x5, 16@5x5, 16@5x5; pools 2, 2, 2, 4), dense 16, one logit.

    Args:
        input_size: square input side; must be a multiple of 32 (the total pooling factor).
    """

    def __init__(self, input_size: int = 256) -> None:
        super().__init__()
        if input_size % 32:
            raise ConfigError(f"Meso4 needs an input size divisible by 32, got {input_size}")
        self.features = nn.Sequential(
            _conv_block(3, 8, 3, 2),
            _conv_block(8, 8, 5, 2),
            _conv_block(8, 16, 5, 2),
            _conv_block(16, 16, 5, 4),
        )
        self.head = meso_head(input_size)


class TinyCNN(FeaturesHead):
    """Two conv layers and a linear head: for tests and quick experiments, not a paper model."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width, 2))


@register_detector
def mesonet(pretrained: bool = False, input_size: int = 256, mean: Sequence[float] = (0.5,) * 3,
            std: Sequence[float] = (0.5,) * 3) -> Detector:
    """Meso4 written in advdf; single-logit output exposed as two logits. No hub weights exist."""
    return Detector(Meso4(input_size), input_size=input_size, mean=tuple(mean), std=tuple(std), single_logit=True)


@register_detector
def tiny_cnn(pretrained: bool = False, input_size: int = 32, width: int = 8, mean: Sequence[float] = (0.5,) * 3,
             std: Sequence[float] = (0.5,) * 3) -> Detector:
    """A two-layer CNN for tests (no hub weights)."""
    return Detector(TinyCNN(width), input_size=input_size, mean=tuple(mean), std=tuple(std))
