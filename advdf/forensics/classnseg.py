"""ClassNSeg — Nguyen et al., "Multi-task Learning for Detecting and Segmenting Manipulated Facial Images and Videos",
BTAS 2019: a Y-shaped autoencoder whose latent zones classify, with a segmentation and a reconstruction decoder.

Layer layout (of the public implementation): the encoder is nine 3x3 convolutions (padding 1), each with batch norm
and ReLU, widths 3-8-8-16-16-32-32-64-64-128, stride 2 on the 2nd, 4th, 6th and 8th, so a 256 px input gives a
128 x 16 x 16 latent (zones: channels 0-63 fake, 64-127 real). A shared decoder of four 3x3 transposed convolutions
(128-64 s1, 64-64 s2, 64-32 s1, 32-32 s2) feeds two branches of five: segmentation 32-16 s1, 16-16 s2, 16-8 s1,
8-8 s2, 8-2 s1 and a softmax over the two channels; reconstruction the same widths ending 8-3 and a tanh. Every
transposed convolution but the last of a branch has batch norm and ReLU; stride-2 ones use output padding 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from advdf.forensics.base import ZoneAutoencoder, conv_bn_relu, init_dcgan_style
from advdf.forensics.registry import register_forensic
from advdf.models.base import IMAGENET_MEAN, IMAGENET_STD

ENCODER_WIDTHS = (3, 8, 8, 16, 16, 32, 32, 64, 64, 128)
STRIDE2_LAYERS = (2, 4, 6, 8)  # 1-based


def _deconv(c_in: int, c_out: int, stride: int, last: bool = False) -> nn.Module:
    conv = nn.ConvTranspose2d(c_in, c_out, 3, stride, 1, output_padding=stride - 1, bias=last)
    return conv if last else nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _branch(c_out: int) -> nn.Sequential:
    return nn.Sequential(_deconv(32, 16, 1), _deconv(16, 16, 2), _deconv(16, 8, 1), _deconv(8, 8, 2),
                         _deconv(8, c_out, 1, last=True))


class ClassNSeg(ZoneAutoencoder):
    """Nguyen et al.'s multi-task autoencoder; input side divisible by 16 (256 in the paper)."""

    has_segmentation = True

    def __init__(self, input_size: int = 256, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__(input_size, mean, std)
        self.encoder = nn.Sequential(*(conv_bn_relu(c_in, c_out, 2 if i in STRIDE2_LAYERS else 1)
                                       for i, (c_in, c_out) in enumerate(pairwise(ENCODER_WIDTHS), 1)))
        self.shared = nn.Sequential(_deconv(128, 64, 1), _deconv(64, 64, 2), _deconv(64, 32, 1), _deconv(32, 32, 2))
        self.seg_branch = _branch(2)
        self.rec_branch = _branch(3)
        init_dcgan_style(self)

    def decode(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.shared(h)
        return {"seg": self.seg_branch(shared).softmax(1), "recon": torch.tanh(self.rec_branch(shared))}


@register_forensic
def classnseg(input_size: int = 256, **kwargs) -> ClassNSeg:
    return ClassNSeg(input_size, **kwargs)
