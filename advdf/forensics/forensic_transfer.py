"""ForensicTransfer — Cozzolino et al., "ForensicTransfer: Weakly-supervised Domain Adaptation for Forgery
Detection", arXiv 1812.02510: an autoencoder whose latent zones classify, with a reconstruction decoder only.

No official code exists; advdf follows the public re-implementations: the encoder is five 3x3 convolutions with
batch norm and ReLU, widths 8, 16, 32, 64, 128, the first at stride 1 and the rest at stride 2 (256 px -> a
128 x 16 x 16 latent, zones 64 / 64); the decoder is four nearest x2 upsamplings each followed by a 3x3 convolution,
batch norm and ReLU (128-64-32-16-8), and a last 3x3 convolution to 3 channels. The original feeds a high-pass
residual of the image; its kernel is not recoverable, so ``residual`` is a switch (off by default, as seed 002's
transfer experiment re-implements it without) and, on, applies a fixed 3x3 Laplacian per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from advdf.forensics.base import ZoneAutoencoder, conv_bn_relu, init_dcgan_style
from advdf.forensics.registry import register_forensic
from advdf.models.base import IMAGENET_MEAN, IMAGENET_STD

WIDTHS = (8, 16, 32, 64, 128)
LAPLACIAN = ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0))


class HighPass(nn.Module):
    """A fixed per-channel 3x3 Laplacian (the residual front end)."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        kernel = torch.tensor(LAPLACIAN).expand(channels, 1, 3, 3).clone()
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


class ForensicTransfer(ZoneAutoencoder):
    """Cozzolino et al.'s autoencoder; input side divisible by 16."""

    def __init__(self, input_size: int = 256, residual: bool = False, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__(input_size, mean, std)
        self.residual = residual
        layers = [HighPass()] if residual else []
        layers += [conv_bn_relu(c_in, c_out, 1 if i == 0 else 2)
                   for i, (c_in, c_out) in enumerate(pairwise((3, *WIDTHS)))]
        self.encoder = nn.Sequential(*layers)
        up = [nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_bn_relu(c_in, c_out))
              for c_in, c_out in pairwise(WIDTHS[::-1])]
        self.decoder = nn.Sequential(*up, nn.Conv2d(WIDTHS[0], 3, 3, 1, 1))
        init_dcgan_style(self)

    def decode(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recon": self.decoder(h)}


@register_forensic
def forensic_transfer(input_size: int = 256, residual: bool = False, **kwargs) -> ForensicTransfer:
    return ForensicTransfer(input_size, residual=residual, **kwargs)
