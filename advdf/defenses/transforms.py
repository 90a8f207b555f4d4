"""Seed 000's non-learned defenses: no defense, 3x3 median / Gaussian / average smoothing, JPEG at quality q.

The smoothing filters are differentiable (kornia), so an adaptive attacker backpropagates through them as they
are. JPEG is not: its adaptive attacker differentiates through a surrogate (BPDA or kornia's differentiable codec).
"""

from __future__ import annotations

import torch
import torchvision.io as tvio
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import box_blur, gaussian_blur2d, median_blur

from advdf.defenses.base import Defense, register_defense
from advdf.errors import ConfigError

JPEG_SURROGATES = ("bpda", "kornia")


def _odd_kernel(kernel_size: int) -> int:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
    return kernel_size


@register_defense
class NoDefense(Defense):
    """The "NA" column: the detector sees the input unchanged."""

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register_defense
class MedianSmoothing(Defense):
    """Median filter ("MS"), default 3x3."""

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "median"

    def __init__(self, kernel_size: int = 3, adaptive: bool = False, eot_samples: int = 1) -> None:
        super().__init__(adaptive=adaptive, eot_samples=eot_samples)
        self.kernel_size = _odd_kernel(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return median_blur(x, self.kernel_size)


@register_defense
class GaussianSmoothing(Defense):
    """Gaussian filter ("GS"), default 3x3 with sigma 0.8 (OpenCV's default sigma for a 3x3 kernel)."""

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "gaussian"

    def __init__(self, kernel_size: int = 3, sigma: float = 0.8, adaptive: bool = False,
                 eot_samples: int = 1) -> None:
        super().__init__(adaptive=adaptive, eot_samples=eot_samples)
        self.kernel_size = _odd_kernel(kernel_size)
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")


@register_defense
class AverageSmoothing(Defense):
    """Mean filter ("AS"), default 3x3."""

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "average"

    def __init__(self, kernel_size: int = 3, adaptive: bool = False, eot_samples: int = 1) -> None:
        super().__init__(adaptive=adaptive, eot_samples=eot_samples)
        self.kernel_size = _odd_kernel(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return box_blur(x, (k, k), border_type="reflect")


@register_defense
class JPEG(Defense):
    """A real JPEG encode/decode at ``quality`` (libjpeg through torchvision), batched.

    The real codec is not differentiable; ``through`` gives an adaptive attacker a surrogate:

    - ``"bpda"``: the real JPEG forward with an identity backward (Athalye et al. 2018's BPDA);
    - ``"kornia"``: kornia's differentiable JPEG (Reich et al. 2024), forward and backward, close to the real codec.
    """

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "jpeg"

    def __init__(self, quality: int = 90, surrogate: str = "bpda", adaptive: bool = False,
                 eot_samples: int = 1) -> None:
        super().__init__(adaptive=adaptive, eot_samples=eot_samples)
        if not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be in [1, 100], got {quality}")
        if surrogate not in JPEG_SURROGATES:
            raise ConfigError(f"unknown JPEG surrogate {surrogate!r}; choose one of {', '.join(JPEG_SURROGATES)}")
        self.quality = int(quality)
        self.surrogate = surrogate

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        images = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        encoded = tvio.encode_jpeg(list(images), quality=self.quality)
        decoded = tvio.decode_jpeg(encoded, mode=tvio.ImageReadMode.RGB)
        return torch.stack(decoded).to(device=device, dtype=x.dtype) / 255.0

    def through(self, x: torch.Tensor) -> torch.Tensor:
        if self.surrogate == "kornia":
            quality = torch.tensor([self.quality], dtype=x.dtype, device=x.device)
            return jpeg_codec_differentiable(x, quality)
        # Adding x - x.detach() (exactly zero) keeps the real JPEG's values bit for bit and routes the gradient
        # straight to x: the identity backward of BPDA.
        return self(x) + (x - x.detach())
