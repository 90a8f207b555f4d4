"""StarGAN — Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain Image-to-Image
Translation", CVPR 2018; the layout of the official PyTorch code (yunjey/stargan, model.py).

Generator (``main``, one Sequential): the condition tiled over the image and concatenated to it; conv 7x7 to
``conv_dim``; two conv 4x4 stride 2 (x2 channels each); ``repeat_num`` residual blocks (conv 3x3, norm, ReLU, conv 3x3,
norm, plus the input); two transposed conv 4x4 stride 2 (/2 channels each); conv 7x7 to 3 and tanh. No convolution
has a bias; every norm is InstanceNorm2d(affine=True, track_running_stats=True). Official: conv_dim 64, repeat_num 6,
5 CelebA attributes, 128 px by default (the released CelebA model is 256 px).

Discriminator: ``repeat_num`` conv 4x4 stride 2 with bias and LeakyReLU(0.01) (``main``), then ``conv1`` (3x3 to one
channel, the PatchGAN output) and ``conv2`` (a kernel covering the whole remaining map, one logit per attribute).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from advdf.errors import ConfigError
from advdf.generators.base import (
    HAIR_COLOURS,
    STARGAN_ATTRIBUTES,
    Generator,
    check_image_size,
    check_positive,
)
from advdf.generators.registry import register_discriminator, register_generator


class InstanceNorm(nn.InstanceNorm2d):
    """StarGAN's InstanceNorm2d(affine=True, track_running_stats=True) that, with ``input_stats_in_eval``, keeps
    normalizing each image by its own statistics in eval mode.

    The official test script never calls ``G.eval()``, so the released outputs are those of per-image statistics;
    the running averages (kept in the state dict, so official checkpoints load strictly) would give other images.
    advdf's attacks run models in eval mode, hence the default.
    """

    def __init__(self, channels: int, input_stats_in_eval: bool = True) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)
        self.input_stats_in_eval = input_stats_in_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.input_stats_in_eval:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


class ResidualBlock(nn.Module):
    """conv 3x3 - norm - ReLU - conv 3x3 - norm, plus the input (``main`` as in the official code)."""

    def __init__(self, dim: int, input_stats_in_eval: bool = True) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim, input_stats_in_eval), nn.ReLU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim, input_stats_in_eval))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class StarGAN(Generator):
    """StarGAN's generator.

    Args:
        image_size: side of the square input, divisible by 4 (the two stride-2 stages).
        conv_dim: width of the first convolution (official 64).
        repeat_num: number of residual blocks (official 6).
        attributes: the attributes of the condition vector, in order (official: Black_Hair, Blond_Hair,
            Brown_Hair, Male, Young); every one is a domain.
        input_stats_in_eval: instance statistics in eval mode too, as the official test runs (see
            :class:`InstanceNorm`).

    The condition is the target attribute vector in {0, 1} (the official ``create_labels``): a target hair colour
    is set to 1 and the other hair colours to 0; any other attribute is flipped.
    """

    name = "stargan"

    def __init__(self, image_size: int = 128, conv_dim: int = 64, repeat_num: int = 6,
                 attributes: Sequence[str] = STARGAN_ATTRIBUTES, input_stats_in_eval: bool = True) -> None:
        check_image_size(self.name, image_size, 4)
        check_positive(self.name, conv_dim=conv_dim)
        if not isinstance(repeat_num, int) or repeat_num < 0:
            raise ConfigError(f"{self.name} needs a non-negative integer repeat_num, got {repeat_num!r}")
        super().__init__(image_size, attributes, attributes)
        c_dim = len(self.attributes)
        layers: list[nn.Module] = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False),
                                   InstanceNorm(conv_dim, input_stats_in_eval), nn.ReLU()]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), InstanceNorm(dim * 2, input_stats_in_eval),
                       nn.ReLU()]
            dim *= 2
        layers += [ResidualBlock(dim, input_stats_in_eval) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False),
                       InstanceNorm(dim // 2, input_stats_in_eval), nn.ReLU()]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def condition(self, attrs: torch.Tensor, domain: int) -> torch.Tensor:
        i = self._edited_index(attrs, domain)
        target = attrs.float().clone()
        if self.attributes[i] in HAIR_COLOURS:
            for j, name in enumerate(self.attributes):
                if name in HAIR_COLOURS:
                    target[:, j] = float(j == i)
        else:
            target[:, i] = 1 - target[:, i]
        return target

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, 4)
        if c is None or c.shape != (x.shape[0], len(self.attributes)):
            raise ValueError(f"{self.name} needs a condition of shape ({x.shape[0]}, {len(self.attributes)}), "
                             f"got {None if c is None else tuple(c.shape)}")
        tiled = c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, tiled], dim=1))


class StarGANDiscriminator(nn.Module):
    """StarGAN's PatchGAN discriminator with an attribute-classification head.

    Args:
        image_size: side of the square input, divisible by 2**repeat_num (``conv2``'s kernel covers the rest).
        conv_dim: width of the first convolution (official 64).
        repeat_num: number of stride-2 convolutions (official 6).
        c_dim: number of attributes (official 5).

    Returns ``(out_src, out_cls)``: PatchGAN logits (N, 1, S/2**repeat_num, S/2**repeat_num) and attribute logits
    (N, c_dim).
    """

    name = "stargan discriminator"
    checkpoint_key = None

    def __init__(self, image_size: int = 128, conv_dim: int = 64, repeat_num: int = 6, c_dim: int = 5) -> None:
        check_positive(self.name, conv_dim=conv_dim, repeat_num=repeat_num, c_dim=c_dim)
        check_image_size(self.name, image_size, 2**repeat_num)
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1)


@register_generator
def stargan(image_size: int = 128, **kwargs) -> StarGAN:
    return StarGAN(image_size=image_size, **kwargs)


@register_discriminator
def stargan_discriminator(image_size: int = 128, **kwargs) -> StarGANDiscriminator:
    return StarGANDiscriminator(image_size=image_size, **kwargs)
