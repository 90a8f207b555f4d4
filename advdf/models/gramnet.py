"""GramNet (Liu et al., CVPR 2020, "Global Texture Enhancement for Fake Face Detection in the Wild").

A timm ResNet whose intermediate feature maps also feed small "Gram blocks": each block projects a map to 32
channels, takes its Gram matrix (channel-by-channel correlations, a global texture statistic that does not depend
on where in the image a texture occurs), reads that 32x32 matrix as a one-channel image with two stride-2 convs and
pools it to a 32-d vector. The vectors and the backbone's pooled features feed one linear layer with two logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from timm.models.resnet import ResNet
from torch import nn

from advdf.errors import ConfigError
from advdf.models.base import IMAGENET_MEAN, IMAGENET_STD, Detector
from advdf.models.registry import register_detector

GRAM_CHANNELS = 32
TAP_NAMES = ("input", "stem", "layer1", "layer2", "layer3", "layer4")
DEFAULT_TAPS = ("stem", "layer1", "layer2", "layer3", "layer4")


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Batched Gram matrix ``G = F F^T / (C H W)`` of feature maps ``f`` (N, C, H, W) -> (N, C, C).

    ``F`` is scaled by ``1/sqrt(C H W)`` before the product (the same G) so the sums stay small under fp16 autocast.
    """
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w) / float(c * h * w) ** 0.5
    return torch.bmm(flat, flat.transpose(1, 2))


class GramBlock(nn.Module):
    """Project to 32 channels, Gram matrix (N, 1, 32, 32), two stride-2 convs, global average pool -> (N, 32)."""

    def __init__(self, c_in: int, width: int = GRAM_CHANNELS) -> None:
        super().__init__()
        self.project = _conv_bn_relu(c_in, width)
        self.embed = nn.Sequential(
            _conv_bn_relu(1, width, stride=2),
            _conv_bn_relu(width, width, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The projected map ``features`` (N, 32, H, W), its ``gram`` (N, 32, 32) and the ``vector`` (N, 32)."""
        features = self.project(x)
        gram = gram_matrix(features)
        return {"features": features, "gram": gram, "vector": self.embed(gram.unsqueeze(1))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(gram_matrix(self.project(x)).unsqueeze(1))


class GramNet(nn.Module):
    """A timm ResNet with Gram blocks on the tapped feature maps.

    ``forward_features`` runs the backbone once, collecting the tapped maps on the way, and returns the
    concatenation of the backbone's pooled last map and every Gram vector, width
    ``num_features + 32 * len(taps)`` (512 + 32 * len(taps) for ResNet-18); ``forward_head`` is the linear layer.

    Args:
        arch: timm ResNet name (the paper uses ``resnet18``).
        pretrained: load timm hub weights for the backbone (the Gram blocks and head start from scratch).
        taps: where Gram blocks attach: ``input`` (the normalized image), ``stem`` (conv1/bn1/act1, before the
            max-pool), ``layer1`` ... ``layer4``.
        num_classes: logits of the head.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        pretrained: bool = False,
        taps: Sequence[str] = DEFAULT_TAPS,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        taps = tuple(str(t) for t in taps)
        unknown = [t for t in taps if t not in TAP_NAMES]
        if unknown or len(set(taps)) != len(taps):
            raise ConfigError(f"GramNet taps must be distinct names from {TAP_NAMES}, got {list(taps)}")
        if not timm.is_model(arch):
            raise ConfigError(f"GramNet: unknown timm architecture {arch!r}")
        backbone = timm.create_model(arch, pretrained=pretrained, num_classes=0)
        if not isinstance(backbone, ResNet):
            raise ConfigError(f"GramNet needs a timm ResNet backbone, got {arch!r} ({type(backbone).__name__})")
        self.backbone = backbone
        self.taps = taps
        channels = {"input": 3, "stem": backbone.feature_info[0]["num_chs"]}
        channels.update({f"layer{i}": backbone.feature_info[i]["num_chs"] for i in range(1, 5)})
        self.branches = nn.ModuleDict({t: GramBlock(channels[t]) for t in taps})
        self.num_features = backbone.num_features + GRAM_CHANNELS * len(taps)
        self.head = nn.Linear(self.num_features, num_classes)

    def _tapped_maps(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One backbone pass: the maps at ``self.taps`` and the last feature map."""
        b = self.backbone
        maps = {"input": x}
        x = maps["stem"] = b.act1(b.bn1(b.conv1(x)))
        x = b.maxpool(x)
        for i, layer in enumerate((b.layer1, b.layer2, b.layer3, b.layer4), start=1):
            x = maps[f"layer{i}"] = layer(x)
        return {t: maps[t] for t in self.taps}, x

    def branch_outputs(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Per tap: the Gram block's projected map ``features``, its ``gram`` and its ``vector`` (for inspection)."""
        maps, _ = self._tapped_maps(x)
        return {t: self.branches[t].outputs(m) for t, m in maps.items()}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        maps, last = self._tapped_maps(x)
        vectors = [self.backbone.global_pool(last)] + [self.branches[t](m) for t, m in maps.items()]
        return torch.cat(vectors, dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from :meth:`forward_features`; ``pre_logits=True`` returns the features (timm's convention)."""
        return features if pre_logits else self.head(features)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_detector
def gramnet(
    pretrained: bool = False,
    input_size: int = 224,
    arch: str = "resnet18",
    taps: Sequence[str] = DEFAULT_TAPS,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Detector:
    """GramNet on a timm ResNet (paper: ResNet-18); ``pretrained`` loads hub weights for the backbone only."""
    backbone = GramNet(arch, pretrained=pretrained, taps=taps)
    return Detector(backbone, input_size=input_size, mean=tuple(mean), std=tuple(std))
