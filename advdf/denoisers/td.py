"""The denoiser of transferable defense (TD; Gao et al., 2021): an encoder-decoder with a noisy latent.

TD trains one encoder-decoder as two modules at once: a reconstruction module (clean image -> itself) and a denoising
module (adversarial image -> its clean image, guided at the detector's logits); see
:class:`advdf.lit.DenoiserModule` with ``guidance="td"``. Gaussian noise added to the latent code while training
keeps the decoder from relying on fine latent detail, which is what lets the denoiser transfer across attacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TransferableDenoiser(nn.Module):
    """Encoder (per stage: a stride-2 conv then a conv) -> latent (+ N(0, latent_noise^2) in training) -> decoder
    (per stage: bilinear x2 upsample then two convs) -> image.

    Args:
        widths: channels of the encoder stages; the decoder mirrors them. Sides must be divisible by
            ``2 ** len(widths)``.
        latent_noise: standard deviation of the Gaussian noise added to the latent code in training mode.
        residual: the decoder predicts a correction added to the input (``clamp(x + decoded)``; its last conv starts
            at zero, so a new denoiser is the identity and a short schedule keeps the detector's clean accuracy);
            ``False``: the decoder predicts the image itself (through a sigmoid), a plain encoder-decoder that needs
            a long schedule before the detector accepts its reconstructions.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), latent_noise: float = 0.1,
                 residual: bool = True) -> None:
        super().__init__()
        if not widths:
            raise ConfigError("TransferableDenoiser needs at least one stage width")
        if latent_noise < 0:
            raise ConfigError(f"latent_noise must be >= 0, got {latent_noise}")
        self.factor = 2 ** len(widths)
        self.latent_noise = float(latent_noise)
        chans = [3, *widths]
        self.encoder = nn.Sequential(*(nn.Sequential(_conv(a, b, stride=2), _conv(b, b))
                                       for a, b in zip(chans[:-1], chans[1:], strict=True)))
        back = [*widths[::-1], widths[0]]
        self.decoder = nn.Sequential(*(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _conv(a, b), _conv(b, b))
            for a, b in zip(back[:-1], back[1:], strict=True)))
        self.to_image = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.residual = bool(residual)
        if self.residual:
            nn.init.zeros_(self.to_image.weight)
            nn.init.zeros_(self.to_image.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ConfigError(f"TransferableDenoiser needs sides divisible by {self.factor}, got {tuple(x.shape[-2:])}")
        z = self.encoder(x)
        if self.training and self.latent_noise > 0:
            z = z + self.latent_noise * torch.randn_like(z)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded image (``residual=False``) or correction (``residual=True``)."""
        out = self.to_image(self.decoder(z))
        return out if self.residual else torch.sigmoid(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decoded = self.decode(self.encode(x))
        return (x + decoded).clamp(0.0, 1.0) if self.residual else decoded
