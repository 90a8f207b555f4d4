"""A deterministic cartoon rendering of face images: the second domain ("anime") of seed 003's U-GAT-IT offline.

U-GAT-IT translates CelebA faces to anime faces (selfie2anime); no anime set is at hand offline, so advdf's domain B is
this stylization of CelebA-layout faces: smoothed, posterized, more saturated colours with dark outlines, which is
what separates anime drawings from photographs at the scale of a small model. Because it is a fixed function of the
face, a trained translator can be checked against the stylization of its own input (see
:mod:`advdf.jobs.generator_eval`), which an unpaired anime set would not allow. Training stays unpaired: the module
stylizes other faces of the batch than the ones it translates.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from advdf.errors import ConfigError

_LUMA = (0.299, 0.587, 0.114)


class AnimeStyle:
    """The domain-B transform: images in [-1, 1] (N, 3, H, W) -> their cartoon rendering in [-1, 1].

    Steps: ``smooth`` passes of a 3x3 box filter (flat regions), colours pushed away from their grey by
    ``saturation``, each channel posterized to ``levels`` values, then dark outlines where the Sobel gradient of the
    smoothed luminance exceeds ``edge_threshold`` (fully dark at ``edge_threshold + edge_softness``).

    Args:
        levels: values per channel after posterizing (at least 2).
        saturation: colour gain around the grey of each pixel (1: unchanged).
        smooth: box-filter passes before posterizing (0: none).
        edge_threshold: Sobel magnitude (on [0, 1] luminance) where outlines start.
        edge_softness: width of the ramp from no outline to a black one.
    """

    def __init__(self, levels: int = 5, saturation: float = 1.5, smooth: int = 2, edge_threshold: float = 0.5,
                 edge_softness: float = 0.4) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ConfigError(f"domain_b.levels={levels!r}: must be an integer of at least 2")
        if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
            raise ConfigError(f"domain_b.smooth={smooth!r}: must be a non-negative integer")
        if saturation < 0 or edge_threshold < 0 or edge_softness <= 0:
            raise ConfigError("domain_b: saturation and edge_threshold must be >= 0 and edge_softness > 0")
        self.levels, self.saturation, self.smooth = levels, float(saturation), smooth
        self.edge_threshold, self.edge_softness = float(edge_threshold), float(edge_softness)

    def __repr__(self) -> str:
        return (f"AnimeStyle(levels={self.levels}, saturation={self.saturation}, smooth={self.smooth}, "
                f"edge_threshold={self.edge_threshold}, edge_softness={self.edge_softness})")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"AnimeStyle needs images (N, 3, H, W), got {tuple(x.shape)}")
        rgb = (x.float() + 1) / 2
        for _ in range(self.smooth):
            rgb = F.avg_pool2d(F.pad(rgb, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        luma = torch.tensordot(torch.tensor(_LUMA, device=x.device), rgb, dims=([0], [1]))[:, None]
        colour = (luma + self.saturation * (rgb - luma)).clamp(0, 1)
        steps = self.levels - 1
        flat = torch.round(colour * steps) / steps
        outline = ((self._sobel(luma) - self.edge_threshold) / self.edge_softness).clamp(0, 1)
        return (flat * (1 - outline) * 2 - 1).to(x.dtype)

    @staticmethod
    def _sobel(luma: torch.Tensor) -> torch.Tensor:
        """Gradient magnitude (N, 1, H, W) of a one-channel image, with replicated borders."""
        gx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=luma.device)
        kernels = torch.stack([gx, gx.T])[:, None]
        grad = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels)
        return grad.pow(2).sum(1, keepdim=True).sqrt()
