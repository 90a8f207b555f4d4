"""A convolutional denoising autoencoder (after Gu & Rigazio, 2015): corrupted image in, clean image out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError


class DenoisingAutoencoder(nn.Module):
    """Strided-conv encoder and transposed-conv decoder; a sigmoid keeps the output in [0, 1].

    Args:
        widths: channels of the encoder stages (each halves the side); the decoder mirrors them. The input side
            must be divisible by ``2 ** len(widths)``.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if not widths:
            raise ConfigError("DenoisingAutoencoder needs at least one stage width")
        self.factor = 2 ** len(widths)
        chans = [3, *widths]
        self.encoder = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
            for a, b in zip(chans[:-1], chans[1:], strict=True)))
        back = chans[::-1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(back[:-1], back[1:], strict=True)):
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(back) - 2:
                layers += [nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ConfigError(f"DenoisingAutoencoder needs sides divisible by {self.factor}, got {tuple(x.shape[-2:])}")
        return torch.sigmoid(self.decoder(self.encoder(x)))
