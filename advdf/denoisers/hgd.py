"""DUNET, the denoiser of the high-level representation guided denoiser (HGD; Liao et al., CVPR 2018).

A U-Net without the usual per-stage pooling: each encoder stage after the first starts with a stride-2 conv, each
decoder stage upsamples (bilinear) to its skip's size, concatenates the skip and runs its conv blocks. A final 1x1
conv predicts a residual (the negative of the adversarial noise) that is added to the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advdf.errors import ConfigError


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """conv3x3 - BN - ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` conv blocks, the first at ``stride``."""
    return nn.Sequential(*(_block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(blocks)))


class DUNet(nn.Module):
    """DUNET with HGD's widths and depths by default.

    Args:
        encoder_widths: channels of the encoder stages, shallow to deep (HGD: 64, 128, 256, 256, 256).
        encoder_blocks: conv blocks per encoder stage (HGD: 2, 3, 3, 3, 3).
        decoder_widths: channels of the decoder stages, shallow to deep (HGD: 64, 128, 256, 256); decoder stage
            ``i`` merges encoder stage ``i``'s output with the upsampled output of the stage below it.
        decoder_blocks: conv blocks per decoder stage (HGD: 2, 3, 3, 3).
    """

    def __init__(
        self,
        encoder_widths: Sequence[int] = (64, 128, 256, 256, 256),
        encoder_blocks: Sequence[int] = (2, 3, 3, 3, 3),
        decoder_widths: Sequence[int] = (64, 128, 256, 256),
        decoder_blocks: Sequence[int] = (2, 3, 3, 3),
    ) -> None:
        super().__init__()
        if len(encoder_widths) != len(encoder_blocks) or len(decoder_widths) != len(decoder_blocks):
            raise ConfigError("DUNet: every stage needs both a width and a block count")
        if len(decoder_widths) != len(encoder_widths) - 1:
            raise ConfigError(f"DUNet: {len(encoder_widths)} encoder stages need {len(encoder_widths) - 1} decoder "
                              f"stages, got {len(decoder_widths)}")
        self.encoder = nn.ModuleList()
        c_in = 3
        for i, (width, blocks) in enumerate(zip(encoder_widths, encoder_blocks, strict=True)):
            self.encoder.append(_stage(c_in, width, blocks, stride=1 if i == 0 else 2))
            c_in = width
        # Built deep to shallow (the order forward runs them); stage i reads the stage below and encoder stage i.
        self.decoder = nn.ModuleList()
        below = encoder_widths[-1]
        for i in reversed(range(len(decoder_widths))):
            self.decoder.append(_stage(below + encoder_widths[i], decoder_widths[i], decoder_blocks[i], stride=1))
            below = decoder_widths[i]
        self.to_residual = nn.Conv2d(decoder_widths[0], 3, 1)
        # Zero-initialized: a new DUNET is the identity, so training starts from the detector's clean accuracy.
        nn.init.zeros_(self.to_residual.weight)
        nn.init.zeros_(self.to_residual.bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted residual r(x); the denoised image is ``clamp(x + r(x), 0, 1)``."""
        skips = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        h = skips.pop()
        for stage in self.decoder:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = stage(torch.cat([h, skip], dim=1))
        return self.to_residual(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.residual(x)).clamp(0.0, 1.0)
