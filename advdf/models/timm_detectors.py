"""Detectors backed by timm architectures.

Hub weights load through timm when ``pretrained=True`` and the hub is reachable; offline, train from scratch
or point ``checkpoint_path`` at local weights.
"""

from __future__ import annotations

import timm

from advdf.models.base import Detector
from advdf.models.registry import register_detector


def timm_detector(arch: str, pretrained: bool = False, input_size: int | None = None, **kwargs) -> Detector:
    """Wrap ``timm.create_model(arch)`` with a 2-class head and the architecture's own normalization."""
    backbone = timm.create_model(arch, pretrained=pretrained, num_classes=2, **kwargs)
    cfg = backbone.pretrained_cfg
    size = input_size or cfg.get("input_size", (3, 224, 224))[-1]
    return Detector(backbone, input_size=size, mean=cfg.get("mean"), std=cfg.get("std"))


@register_detector
def resnet50(pretrained: bool = False, **kwargs) -> Detector:
    """ResNet-50 (He et al. 2016)."""
    return timm_detector("resnet50", pretrained, **kwargs)


@register_detector
def mobilenetv2(pretrained: bool = False, **kwargs) -> Detector:
    """MobileNetV2 width 1.0 (Sandler et al. 2018)."""
    return timm_detector("mobilenetv2_100", pretrained, **kwargs)
