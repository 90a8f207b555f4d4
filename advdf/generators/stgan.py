"""STGAN — Liu et al., "STGAN: A Unified Selective Transfer Network for Arbitrary Image Attribute Editing",
CVPR 2019. The official code is TensorFlow (csmliu/STGAN, models.py: ``Genc``, ``Gstu``, ``ConvGRUCell``, ``Gdec``,
``D``); this is a PyTorch port that follows it layer by layer, with AttGAN-PyTorch's naming (``enc_layers``,
``dec_layers``, blocks under ``layers``) since no official PyTorch state dict exists.

Generator (the official train.py defaults): ``n_layers`` conv 4x4 stride 2 blocks (BatchNorm, LeakyReLU 0.2; widths
``enc_dim * 2**i`` capped at 1024). Selective transfer units ``stu`` (one per skip level, deepest first): the state
(the deepest feature map with the tiled attribute difference at first) is upsampled by a transposed conv 4x4 stride 2
to the level's width; reset and update gates (conv 3x3, sigmoid) and the new information (conv 3x3 on the skip
feature and the reset state, tanh) give ``(1 - z) * state + z * info`` for the decoder and the reset state for the
next unit, with the attribute difference concatenated to it for the first ``stu_inject_layers`` units. The decoder is
AttGAN's with ``shortcut_layers`` skips taken from the units' outputs and ``inject_layers`` attribute injections
(official: 4 and 4; widths 1024, 512, 256, 128; a last transposed conv to 3 and tanh). Official: 64 / 64 / 64,
5 layers, 13 attributes, 128 px.

Port details. TF's 'SAME' padding of a 4x4 stride-2 convolution on an even side is padding 1, as here (a transposed
convolution's output alignment may differ by a pixel from TF's). slim's batch norm has epsilon 1e-3, kept here; the
running-average momentum is PyTorch's. Convolutions followed by a norm have no bias (slim drops it), the others do.
The discriminator's InstanceNorm is affine (slim's has only an offset), as in AttGAN-PyTorch. A TF checkpoint would
need its NHWC kernels and the flattened fully connected weights permuted to load.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.generators.attgan import MAX_DIM, Block, tile
from advdf.generators.base import (
    ATTGAN_ATTRIBUTES,
    EXCLUSIVE,
    Generator,
    check_image_size,
    check_positive,
    flip_attribute,
)
from advdf.generators.registry import register_discriminator, register_generator

# The five rare attributes CDMAA attacks on STGAN; the model itself edits all 13.
STGAN_DOMAINS = ("Bangs", "Eyeglasses", "No_Beard", "Mouth_Slightly_Open", "Pale_Skin")


class SelectiveTransferUnit(nn.Module):
    """One STU (the official ``ConvGRUCell`` with ``norm='none'`` and ``pass_state='stu'``).

    Args:
        in_dim: width of the skip feature it refines.
        state_dim: width of the incoming state (with the attributes when they are injected).
        out_dim: width of its output and of the state it passes on.
        kernel_size: of the gate convolutions (official 3).
    """

    def __init__(self, in_dim: int, state_dim: int, out_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.upsample = nn.ConvTranspose2d(state_dim, out_dim, 4, 2, 1)
        self.reset_gate = nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, pad)
        self.update_gate = nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, pad)
        self.info = nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, pad)

    def forward(self, feature: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.upsample(state)
        both = torch.cat([feature, state], dim=1)
        reset, update = torch.sigmoid(self.reset_gate(both)), torch.sigmoid(self.update_gate(both))
        new_state = reset * state
        info = torch.tanh(self.info(torch.cat([feature, new_state], dim=1)))
        return (1 - update) * state + update * info, new_state


class STGAN(Generator):
    """STGAN's generator: AttGAN's encoder-decoder with selective transfer units on the skips.

    Args:
        image_size: side of the square input, divisible by 2**n_layers.
        enc_dim, dec_dim, stu_dim: widths of the first encoder layer, the last hidden decoder layer and the
            shallowest STU (official 64 each).
        n_layers: stride-2 layers of the encoder and the decoder (official 5); there are ``n_layers - 1`` STUs.
        shortcut_layers, inject_layers: decoder skips (from the STUs) and attribute injections (official 4, 4).
        stu_inject_layers: STUs whose outgoing state gets the attributes again (official 4).
        stu_kernel_size: odd kernel of the STU convolutions (official 3).
        attributes: the attributes the model edits, in order (official: the 13 of AttGAN).
        domains: the attributes an attack targets (default: CDMAA's five, :data:`STGAN_DOMAINS`).
        thres_int, test_int: the attribute encoding's magnitudes (official 0.5 and 1.0).

    The condition is the official test's difference vector ``b_ - a_``: the target ``b`` is the source with the
    domain's attribute flipped and its exclusive partners turned off (STGAN's rule: hair colours, Bald / Bangs,
    Straight / Wavy hair; not the beard pair), both are encoded as ``(2 v - 1) * thres_int`` and the edited entry of
    ``b_`` is multiplied by ``test_int``. With the defaults it is ``b - a``: +-1 where the edit changed an attribute,
    0 elsewhere.
    """

    name = "stgan"

    def __init__(self, image_size: int = 128, enc_dim: int = 64, dec_dim: int = 64, stu_dim: int = 64,
                 n_layers: int = 5, shortcut_layers: int = 4, inject_layers: int = 4, stu_inject_layers: int = 4,
                 stu_kernel_size: int = 3, attributes: Sequence[str] = ATTGAN_ATTRIBUTES,
                 domains: Sequence[str] = STGAN_DOMAINS, thres_int: float = 0.5, test_int: float = 1.0) -> None:
        check_positive(self.name, enc_dim=enc_dim, dec_dim=dec_dim, stu_dim=stu_dim, stu_kernel_size=stu_kernel_size)
        if not isinstance(n_layers, int) or n_layers < 2:
            raise ConfigError(f"{self.name} needs an integer n_layers >= 2, got {n_layers!r}")
        if stu_kernel_size % 2 == 0:
            raise ConfigError(f"{self.name} needs an odd stu_kernel_size, got {stu_kernel_size}")
        if min(shortcut_layers, inject_layers, stu_inject_layers) < 0:
            raise ConfigError(f"{self.name} needs non-negative shortcut_layers, inject_layers, stu_inject_layers")
        check_image_size(self.name, image_size, 2**n_layers)
        super().__init__(image_size, attributes, domains)
        self.shortcut_layers = min(shortcut_layers, n_layers - 1)
        self.inject_layers = min(inject_layers, n_layers - 1)
        self.stu_inject_layers = stu_inject_layers
        self.thres_int, self.test_int = float(thres_int), float(test_int)
        n_att = len(self.attributes)
        enc = [min(enc_dim * 2**i, MAX_DIM) for i in range(n_layers)]
        self.enc_layers = nn.ModuleList(
            Block(nn.Conv2d(n_in, n_out, 4, 2, 1, bias=False), nn.BatchNorm2d(n_out, eps=1e-3), nn.LeakyReLU(0.2))
            for n_in, n_out in pairwise([3, *enc]))
        units, stu_out = [], []
        state = enc[-1] + n_att
        for i in range(n_layers - 1):  # deepest skip first
            level = n_layers - 2 - i
            out = min(stu_dim * 2**level, MAX_DIM)
            units.append(SelectiveTransferUnit(enc[level], state, out, stu_kernel_size))
            stu_out.insert(0, out)
            state = out + (n_att if stu_inject_layers > i else 0)
        self.stu = nn.ModuleList(units)
        layers: list[nn.Module] = []
        n_in = enc[-1] + n_att
        for i in range(n_layers - 1):
            n_out = min(dec_dim * 2**(n_layers - 1 - i), MAX_DIM)
            layers.append(Block(nn.ConvTranspose2d(n_in, n_out, 4, 2, 1, bias=False),
                                nn.BatchNorm2d(n_out, eps=1e-3), nn.ReLU()))
            n_in = n_out + (stu_out[n_layers - 2 - i] if self.shortcut_layers > i else 0)
            n_in += n_att if self.inject_layers > i else 0
        layers.append(Block(nn.ConvTranspose2d(n_in, 3, 4, 2, 1), nn.Tanh()))
        self.dec_layers = nn.ModuleList(layers)

    # --- conditions ---------------------------------------------------------------------------------------
    def encode_attributes(self, attrs: torch.Tensor) -> torch.Tensor:
        """``(2 a - 1) * thres_int`` for attributes in {0, 1}; training feeds ``encode(b) - encode(a)``."""
        return (attrs.float() * 2 - 1) * self.thres_int

    def condition(self, attrs: torch.Tensor, domain: int) -> torch.Tensor:
        i = self._edited_index(attrs, domain)
        target = self.encode_attributes(flip_attribute(attrs.float(), self.attributes, i, EXCLUSIVE))
        target[:, i] = target[:, i] * self.test_int
        return target - self.encode_attributes(attrs)

    # --- the translation ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, 2 ** len(self.enc_layers))
        if c is None or c.shape != (x.shape[0], len(self.attributes)):
            raise ValueError(f"{self.name} needs a condition of shape ({x.shape[0]}, {len(self.attributes)}), "
                             f"got {None if c is None else tuple(c.shape)}")
        zs = []
        for layer in self.enc_layers:
            x = layer(x)
            zs.append(x)
        n = len(zs)
        skips = [zs[-1]]
        state = torch.cat([zs[-1], tile(c, zs[-1])], dim=1)
        for i, unit in enumerate(self.stu):
            out, state = unit(zs[n - 2 - i], state)
            skips.insert(0, out)
            if self.stu_inject_layers > i:
                state = torch.cat([state, tile(c, state)], dim=1)
        z = torch.cat([skips[-1], tile(c, skips[-1])], dim=1)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, skips[n - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, tile(c, z)], dim=1)
        return z


class STGANDiscriminator(nn.Module):
    """STGAN's discriminator (the official ``D``): AttGAN's, with LeakyReLU 0.2 throughout.

    Args:
        image_size: side of the square input, divisible by 2**n_layers and at least 2**(n_layers + 1).
        dim: width of the first convolution (official 64; capped at 1024).
        fc_dim: width of the hidden fully connected layers (official 1024).
        n_layers: number of stride-2 convolutions (official 5).
        n_attrs: number of attribute logits (official 13).

    Returns ``(adv, att)``: (N, 1) adversarial logits and (N, n_attrs) attribute logits.
    """

    name = "stgan discriminator"

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
                  nn.LeakyReLU(0.2))
            for n_in, n_out in pairwise([3, *widths])))
        features = widths[-1] * (image_size // 2**n_layers) ** 2
        self.fc_adv = nn.Sequential(nn.Linear(features, fc_dim), nn.LeakyReLU(0.2), nn.Linear(fc_dim, 1))
        self.fc_att = nn.Sequential(nn.Linear(features, fc_dim), nn.LeakyReLU(0.2), nn.Linear(fc_dim, n_attrs))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_adv(h), self.fc_att(h)


@register_generator
def stgan(image_size: int = 128, **kwargs) -> STGAN:
    return STGAN(image_size=image_size, **kwargs)


@register_discriminator
def stgan_discriminator(image_size: int = 128, **kwargs) -> STGANDiscriminator:
    return STGANDiscriminator(image_size=image_size, **kwargs)
