"""Seed 000's non-learned defenses: no defense, 3x3 median / Gaussian / average smoothing, JPEG at quality q."""

from __future__ import annotations

import torch
import torchvision.io as tvio
from kornia.filters import box_blur, gaussian_blur2d, median_blur
from torch import nn

from advdf.defenses.base import register_defense
from advdf.errors import ConfigError


def _odd_kernel(kernel_size: int) -> int:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
    return kernel_size


@register_defense
class NoDefense(nn.Module):
    """The "NA" column: the detector sees the input unchanged."""

    defense_name = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register_defense
class MedianSmoothing(nn.Module):
    """Median filter ("MS"), default 3x3."""

    defense_name = "median"

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = _odd_kernel(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return median_blur(x, self.kernel_size)


@register_defense
class GaussianSmoothing(nn.Module):
    """Gaussian filter ("GS"), default 3x3 with sigma 0.8 (OpenCV's default sigma for a 3x3 kernel)."""

    defense_name = "gaussian"

    def __init__(self, kernel_size: int = 3, sigma: float = 0.8) -> None:
        super().__init__()
        self.kernel_size = _odd_kernel(kernel_size)
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")


@register_defense
class AverageSmoothing(nn.Module):
    """Mean filter ("AS"), default 3x3."""

    defense_name = "average"

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = _odd_kernel(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return box_blur(x, (k, k), border_type="reflect")


@register_defense
class JPEG(nn.Module):
    """A real JPEG encode/decode at ``quality`` (libjpeg through torchvision), batched.

    Not differentiable: attacks that must see through it use an adaptive approximation instead.
    """

    defense_name = "jpeg"

    def __init__(self, quality: int = 90) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be in [1, 100], got {quality}")
        self.quality = int(quality)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        images = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        encoded = tvio.encode_jpeg(list(images), quality=self.quality)
        decoded = tvio.decode_jpeg(encoded, mode=tvio.ImageReadMode.RGB)
        return torch.stack(decoded).to(device=device, dtype=x.dtype) / 255.0
