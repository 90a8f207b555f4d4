"""Forensic autoencoders with latent zones (seed 002's targets): the shared interface.

A :class:`ZoneAutoencoder` encodes a [0, 1] image (normalized inside, like every advdf detector) into a latent whose
channels split into two equal **zones**; a zone's energy is the mean absolute activation of its channels, and the
class is the zone with the larger energy. Before decoding, the other zone is zeroed (*selection*): training keeps the
zone of the true label, testing the zone of the predicted one, which is why an attack on the class also breaks the
segmentation and the reconstruction.

Label conventions. The papers number the zones fake = 0, real = 1 (zone 0 = the first half of the channels, the order
of the released ClassNSeg weights); advdf's labels are real = 0, fake = 1. :data:`ZONE_OF_LABEL` maps one onto the
other, and a forward's ``logits`` are the zone energies in advdf's label order, so the (N, 2) logits every attack and
table uses read the same on a forensic autoencoder as on a detector.

A forward returns a dict of tensors, batch first (an attack's model output may be one):
``energies`` (N, 2) in zone order, ``logits`` (N, 2) in label order, ``recon`` (N, 3, H, W) in the normalized input's
space and, for models with a segmentation branch, ``seg`` (N, 2, H, W) per-pixel probabilities (channel 1: forged).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.models.base import FAKE, IMAGENET_MEAN, IMAGENET_STD, REAL

FAKE_ZONE, REAL_ZONE = 0, 1
ZONE_OF_LABEL = {REAL: REAL_ZONE, FAKE: FAKE_ZONE}


def zone_of_label(label: torch.Tensor) -> torch.Tensor:
    """advdf labels (0 real, 1 fake) -> zone indices (0 fake, 1 real)."""
    return 1 - label.long()


def label_of_zone(zone: torch.Tensor) -> torch.Tensor:
    """Zone indices -> advdf labels (the same flip)."""
    return 1 - zone.long()


def activation_loss(energies: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Seed 002's L_act(x, l) = |a_1 - l| + |a_0 - (1 - l)| per sample, with ``level`` l in the zones' convention
    (0 = fake, 1 = real; a float per sample, e.g. 0.45 for IAP-seg)."""
    level = level.to(energies.dtype)
    return (energies[:, REAL_ZONE] - level).abs() + (energies[:, FAKE_ZONE] - (1 - level)).abs()


def segmentation_loss(seg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of per-pixel probabilities ``seg`` (N, 2, H, W) against a {0, 1} mask (N, 1, H, W),
    averaged over pixels. The released ClassNSeg feeds its softmax output to a cross-entropy that applies softmax
    again; advdf takes the log of the probabilities once (the intended loss)."""
    target = mask.squeeze(1).long()
    logp = seg.clamp_min(1e-7).log()
    return nn.functional.nll_loss(logp, target, reduction="none").flatten(1).mean(1)


class ZoneAutoencoder(nn.Module, abc.ABC):
    """Encoder with two latent zones, selection, and decoders; subclasses build ``encoder`` and ``decoders``.

    Args:
        input_size: side of the square input.
        mean, std: the input normalization applied inside (ImageNet's, as ClassNSeg's ``Normalize``).

    Subclasses set ``encoder`` (normalized image -> latent (N, 2K, h, w)) and implement :meth:`decode`
    (selected latent -> dict with ``recon`` and optionally ``seg``). ``has_segmentation`` says whether ``seg`` is
    produced.
    """

    zones = 2
    has_segmentation = False

    def __init__(self, input_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    # --- the pieces --------------------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent of a *normalized* input ``z``; the channel count must split into two zones."""
        h = self.encoder(z)
        if h.shape[1] % 2:
            raise ConfigError(f"{type(self).__name__}'s latent has {h.shape[1]} channels: not two equal zones")
        return h

    @staticmethod
    def energies(h: torch.Tensor) -> torch.Tensor:
        """(N, 2) zone energies a_c = ||h_c||_1 / K_c: the mean absolute activation of each half of the channels."""
        return h.unflatten(1, (2, h.shape[1] // 2)).abs().flatten(2).mean(2)

    @staticmethod
    def select(h: torch.Tensor, zone: torch.Tensor) -> torch.Tensor:
        """``h`` with every zone but ``zone`` (N,) zeroed."""
        keep = nn.functional.one_hot(zone.long(), 2).to(h.dtype)  # (N, 2)
        return (h.unflatten(1, (2, h.shape[1] // 2)) * keep[:, :, None, None, None]).flatten(1, 2)

    @abc.abstractmethod
    def decode(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decoders' outputs (``recon``, and ``seg`` with a segmentation branch) from a selected latent."""

    # --- the forward the attacks and the module use ------------------------------------------------------
    def forward(self, x: torch.Tensor, zone: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The result on [0, 1] images ``x``; ``zone`` (N,) selects the decoded zone (training: the true label's),
        ``None`` the predicted one (testing)."""
        h = self.encode(self.normalize(x))
        energies = self.energies(h)
        if zone is None:
            zone = energies.argmax(1)
        out = self.decode(self.select(h, zone))
        return {"energies": energies, "logits": energies.flip(1), **out}


class DetectorView(nn.Module):
    """A zone autoencoder as a detector: [0, 1] images -> (N, 2) logits (real, fake), the zone energies.

    The decoders are not run, so attacks and tables that only need the class pay for the encoder alone.
    """

    def __init__(self, model: ZoneAutoencoder) -> None:
        super().__init__()
        self.model = model
        self.input_size = model.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.energies(self.model.encode(self.model.normalize(x))).flip(1)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def init_dcgan_style(module: nn.Module, bn_mean: float = 0.5) -> None:
    """ClassNSeg's initialization: convolution weights N(0, 0.02), batch-norm weights N(``bn_mean``, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, bn_mean, 0.02)
            nn.init.zeros_(m.bias)


__all__ = ["FAKE_ZONE", "REAL_ZONE", "ZONE_OF_LABEL", "DetectorView", "ZoneAutoencoder", "activation_loss",
           "conv_bn_relu", "init_dcgan_style", "label_of_zone", "segmentation_loss", "zone_of_label"]
