"""AttGAN — He et al., "AttGAN: Facial Attribute Editing by Only Changing What You Want", IEEE TIP 2019; the layout
of the PyTorch implementation the attack literature uses (elvisyjlin/AttGAN-PyTorch, attgan.py and nn.py).

Generator: ``enc_layers`` conv 4x4 stride 2 blocks (BatchNorm, LeakyReLU 0.01; widths ``enc_dim * 2**i`` capped at
1024); the decoder input is the last feature map concatenated with the tiled attribute vector; ``dec_layers - 1``
transposed conv 4x4 stride 2 blocks (BatchNorm, ReLU; widths 1024, 512, 256, 128 at full width), the first
``shortcut_layers`` followed by a concatenation of the mirrored encoder feature and the first ``inject_layers`` by
the tiled attributes again; a last transposed conv to 3 channels (with bias) and tanh. Every block keeps its layers
under ``layers`` (the official ``Conv2dBlock`` / ``ConvTranspose2dBlock`` / ``LinearBlock``), in the ModuleLists
``enc_layers`` and ``dec_layers``. Official: 64 / 64 / 5 / 5, shortcut 1, inject 0 (the code's default and the
``*_shortcut1_inject0_none`` releases; ``inject1`` releases exist too), 13 attributes, 128 px (256 px releases too).

Discriminators (the official ``Discriminators``): ``conv``, 5 conv 4x4 stride 2 blocks with InstanceNorm(affine)
and LeakyReLU(0.01); two fully connected heads on the flattened map, ``fc_adv`` (1024, ReLU, 1) and ``fc_cls``
(1024, ReLU, one logit per attribute). ReLU is the released models' ``dis_fc_acti``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.generators.base import (
    ATTGAN_ATTRIBUTES,
    EXCLUSIVE,
    EXCLUSIVE_BEARD,
    Generator,
    check_image_size,
    check_positive,
    flip_attribute,
)
from advdf.generators.registry import register_discriminator, register_generator

MAX_DIM = 64 * 16


class Block(nn.Module):
    """A layer with its norm and activation, kept under ``layers`` as AttGAN-PyTorch's ``*Block`` modules do."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def tile(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The vector ``a`` (N, A) repeated over the spatial size of ``like`` (N, C, H, W): (N, A, H, W)."""
    return a.to(like.dtype)[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


class AttGAN(Generator):
    """AttGAN's encoder-decoder generator.

    Args:
        image_size: side of the square input, divisible by 2**enc_layers.
        enc_dim, dec_dim: widths of the first encoder and the last hidden decoder layer (official 64).
        enc_layers, dec_layers: numbers of stride-2 layers (official 5; they must be equal).
        shortcut_layers: decoder layers followed by a skip connection (official 1).
        inject_layers: decoder layers followed by the attribute vector again (official 0).
        attributes: the edited attributes, in order (official: the 13 of :data:`ATTGAN_ATTRIBUTES`); every one is a
            domain.
        thres_int: the magnitude of the attribute encoding (official 0.5).
        test_int: the magnitude of the edited attribute at test time (official 1.0).

    The condition for editing attribute i is the official test's: the target is the source with attribute i
    flipped and, where that turns it on, its exclusive partners (the other hair colours, Bald / Bangs, Mustache /
    No_Beard, Straight / Wavy hair) turned off; every attribute is encoded as ``(2 t - 1) * thres_int`` (+-0.5)
    and attribute i as ``(2 t - 1) * test_int`` (+-1).
    """

    name = "attgan"
    checkpoint_key = "G"

    def __init__(self, image_size: int = 128, enc_dim: int = 64, dec_dim: int = 64, enc_layers: int = 5,
                 dec_layers: int = 5, shortcut_layers: int = 1, inject_layers: int = 0,
                 attributes: Sequence[str] = ATTGAN_ATTRIBUTES, thres_int: float = 0.5,
                 test_int: float = 1.0) -> None:
        check_positive(self.name, enc_dim=enc_dim, dec_dim=dec_dim, enc_layers=enc_layers, dec_layers=dec_layers)
        if enc_layers != dec_layers:
            raise ConfigError(f"{self.name} needs enc_layers == dec_layers (the output must have the input's size), "
                              f"got {enc_layers} and {dec_layers}")
        if min(shortcut_layers, inject_layers) < 0:
            raise ConfigError(f"{self.name} needs non-negative shortcut_layers and inject_layers")
        check_image_size(self.name, image_size, 2**enc_layers)
        super().__init__(image_size, attributes, attributes)
        self.shortcut_layers = min(shortcut_layers, dec_layers - 1)
        self.inject_layers = min(inject_layers, dec_layers - 1)
        self.thres_int, self.test_int = float(thres_int), float(test_int)
        n_attrs = len(self.attributes)
        widths = [min(enc_dim * 2**i, MAX_DIM) for i in range(enc_layers)]
        self.enc_layers = nn.ModuleList(
            Block(nn.Conv2d(n_in, n_out, 4, 2, 1, bias=False), nn.BatchNorm2d(n_out), nn.LeakyReLU(0.01))
            for n_in, n_out in pairwise([3, *widths]))
        layers: list[nn.Module] = []
        n_in = widths[-1] + n_attrs
        for i in range(dec_layers - 1):
            n_out = min(dec_dim * 2**(dec_layers - i - 1), MAX_DIM)
            layers.append(Block(nn.ConvTranspose2d(n_in, n_out, 4, 2, 1, bias=False), nn.BatchNorm2d(n_out),
                                nn.ReLU()))
            n_in = n_out + (widths[dec_layers - 2 - i] if self.shortcut_layers > i else 0)
            n_in += n_attrs if self.inject_layers > i else 0
        layers.append(Block(nn.ConvTranspose2d(n_in, 3, 4, 2, 1), nn.Tanh()))
        self.dec_layers = nn.ModuleList(layers)

    # --- conditions ---------------------------------------------------------------------------------------
    def encode_attributes(self, attrs: torch.Tensor) -> torch.Tensor:
        """The model's encoding of an attribute vector in {0, 1}: ``(2 a - 1) * thres_int`` (training's ``att_a_``)."""
        return (attrs.float() * 2 - 1) * self.thres_int

    def condition(self, attrs: torch.Tensor, domain: int) -> torch.Tensor:
        i = self._edited_index(attrs, domain)
        target = flip_attribute(attrs.float(), self.attributes, i, {**EXCLUSIVE, **EXCLUSIVE_BEARD})
        c = self.encode_attributes(target)
        c[:, i] = c[:, i] * self.test_int / self.thres_int
        return c

    # --- the translation ----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature map of every encoder layer (training decodes one encoding twice)."""
        zs = []
        for layer in self.enc_layers:
            x = layer(x)
            zs.append(x)
        return zs

    def decode(self, zs: list[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        z = torch.cat([zs[-1], tile(c, zs[-1])], dim=1)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, zs[len(self.dec_layers) - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, tile(c, z)], dim=1)
        return z

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, 2 ** len(self.enc_layers))
        if c is None or c.shape != (x.shape[0], len(self.attributes)):
            raise ValueError(f"{self.name} needs a condition of shape ({x.shape[0]}, {len(self.attributes)}), "
                             f"got {None if c is None else tuple(c.shape)}")
        return self.decode(self.encode(x), c)


class AttGANDiscriminator(nn.Module):
    """AttGAN's discriminator with an adversarial and an attribute head (the official ``Discriminators``).

    Args:
        image_size: side of the square input, divisible by 2**n_layers and at least 2**(n_layers + 1).
        dim: width of the first convolution (official 64; widths capped at 1024).
        fc_dim: width of the hidden fully connected layers (official 1024).
        n_layers: number of stride-2 convolutions (official 5).
        n_attrs: number of attribute logits (official 13).

    Returns ``(adv, cls)``: (N, 1) adversarial logits and (N, n_attrs) attribute logits.
    """

    name = "attgan discriminator"
    checkpoint_key = "D"

    def __init__(self, image_size: int = 128, dim: int = 64, fc_dim: int = 1024, n_layers: int = 5,
                 n_attrs: int = len(ATTGAN_ATTRIBUTES)) -> None:
        check_positive(self.name, dim=dim, fc_dim=fc_dim, n_layers=n_layers, n_attrs=n_attrs)
        # Instance norm needs more than one pixel on the last map.
        check_image_size(self.name, image_size, 2**n_layers, minimum=2 * 2**n_layers)
        super().__init__()
        self.image_size = image_size
        widths = [min(dim * 2**i, MAX_DIM) for i in range(n_layers)]
        self.conv = nn.Sequential(*(
            Block(nn.Conv2d(n_in, n_out, 4, 2, 1, bias=False), nn.InstanceNorm2d(n_out, affine=True),
                  nn.LeakyReLU(0.01))
            for n_in, n_out in pairwise([3, *widths])))
        features = widths[-1] * (image_size // 2**n_layers) ** 2
        self.fc_adv = nn.Sequential(Block(nn.Linear(features, fc_dim), nn.ReLU()), Block(nn.Linear(fc_dim, 1)))
        self.fc_cls = nn.Sequential(Block(nn.Linear(features, fc_dim), nn.ReLU()), Block(nn.Linear(fc_dim, n_attrs)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_adv(h), self.fc_cls(h)


@register_generator
def attgan(image_size: int = 128, **kwargs) -> AttGAN:
    return AttGAN(image_size=image_size, **kwargs)


@register_discriminator
def attgan_discriminator(image_size: int = 128, **kwargs) -> AttGANDiscriminator:
    return AttGANDiscriminator(image_size=image_size, **kwargs)
