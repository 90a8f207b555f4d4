"""Detect-ResNet50, seed 001's adversarial detector d(x', h'): is a face crop real or attacked, given its XAI map.

One backbone embeds the image and its attribution map (a single forward over both, stacked on the batch axis);
the two pooled embeddings are concatenated and classified by two linear layers. Output: logits (N, 2) with
0 = real, 1 = attacked.
"""

from __future__ import annotations

import logging

import timm
import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.models.base import IMAGENET_MEAN, IMAGENET_STD
from advdf.models.weights import load_backbone_weights

log = logging.getLogger(__name__)

REAL, ATTACKED = 0, 1
_UNREACHABLE: dict[str, str] = {}  # backbone -> why its hub weights could not be loaded (tried once per process)


def _backbone(name: str, pretrained: bool, weights: str | None) -> tuple[nn.Module, str]:
    """timm ``name`` without classifier (pooled features) and how it was initialized."""
    if weights:
        if pretrained:
            raise ConfigError(f"adv_detector.pretrained=true (the hub) and adv_detector.weights={weights} both name "
                              "the backbone's weights; choose one")
        return load_backbone_weights(timm.create_model(name, pretrained=False, num_classes=0), weights), \
            f"imagenet ({weights})"
    if pretrained and name not in _UNREACHABLE:
        try:
            return timm.create_model(name, pretrained=True, num_classes=0), "imagenet"
        except Exception as err:  # no network, no cached weights: the documented offline fallback
            _UNREACHABLE[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
            log.warning("ImageNet weights for %s unreachable (%s); the backbone starts from random weights", name,
                        _UNREACHABLE[name])
    init = f"random (ImageNet weights unreachable: {_UNREACHABLE[name]})" if pretrained else "random"
    return timm.create_model(name, pretrained=False, num_classes=0), init


class DetectResNet50(nn.Module):
    """Args:
        backbone: timm architecture embedding image and map (``resnet50``: 2048-d each).
        pretrained: start the backbone from ImageNet weights (timm hub); random when they cannot be reached.
        weights: an offline ImageNet weight source instead (``pip:efficientnet_lite0`` with backbone
            ``tf_efficientnet_lite0``; :mod:`advdf.models.weights`).
        hidden: width of the classification head's hidden layer (512).
        freeze_backbone: train the head only (seed 001's Table 4): the backbone gets no gradients and stays in
            eval mode, so its batch-norm statistics do not move either.
        map_scale: maps in [-1, 1] enter the backbone multiplied by this (images are normalized with the
            backbone's own statistics, timm's ``pretrained_cfg``).
        name: label of the configuration (its checkpoint directory).
    """

    def __init__(self, backbone: str = "resnet50", pretrained: bool = True, hidden: int = 512,
                 freeze_backbone: bool = False, map_scale: float = 2.0, name: str = "detect_resnet50",
                 weights: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.backbone, self.init = _backbone(backbone, pretrained, weights)
        dim = self.backbone.num_features
        self.head = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))
        self.freeze_backbone = bool(freeze_backbone)
        self.map_scale = float(map_scale)
        cfg = self.backbone.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", IMAGENET_MEAN)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", IMAGENET_STD)).view(1, 3, 1, 1), persistent=False)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> DetectResNet50:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def embed(self, image: torch.Tensor, xai_map: torch.Tensor) -> torch.Tensor:
        """(N, 2 * dim): the image's embedding, then the map's, from one backbone forward."""
        if image.shape != xai_map.shape:
            raise ValueError(f"image {tuple(image.shape)} and map {tuple(xai_map.shape)} differ in shape")
        both = torch.cat([(image - self.mean) / self.std, xai_map * self.map_scale])
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            z = self.backbone(both)
        return torch.cat(z.chunk(2), dim=1)

    def forward(self, image: torch.Tensor, xai_map: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(image, xai_map))
