"""Detectors backed by timm architectures.

Hub weights load through timm when ``pretrained=True`` and the hub is reachable; offline, train from scratch
or point ``checkpoint_path`` at local weights. Each detector normalizes with its architecture's own statistics
(timm's ``pretrained_cfg``) unless ``mean``/``std`` are given, and takes its own default input side.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from torch import nn

from advdf.models.base import Detector
from advdf.models.registry import register_detector


def timm_detector(
    arch: str,
    pretrained: bool = False,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs,
) -> Detector:
    """Wrap ``timm.create_model(arch)`` with a 2-class head.

    Args:
        arch: timm model name.
        pretrained: load timm hub weights (the 2-class head stays freshly initialized).
        input_size: square input side; default: the architecture's pretrained input size.
        mean: per-channel normalization mean; default: the architecture's.
        std: per-channel normalization std; default: the architecture's.
        **kwargs: forwarded to ``timm.create_model`` (e.g. ``drop_rate``).
    """
    backbone = timm.create_model(arch, pretrained=pretrained, num_classes=2, **kwargs)
    _init_two_class_head(backbone.get_classifier())
    cfg = backbone.pretrained_cfg
    size = input_size or cfg.get("input_size", (3, 224, 224))[-1]
    return Detector(backbone, input_size=size, mean=tuple(mean or cfg["mean"]), std=tuple(std or cfg["std"]))


def _init_two_class_head(head: nn.Module) -> None:
    """Start the 2-class head near zero logits.

    Some timm families (MobileNet, EfficientNet) draw classifier weights from U(-1/sqrt(fan_out), ...), scaled for
    1000 classes: with fan_out = 2 their initial logits have a standard deviation of about 6, and training from
    scratch diverges for epochs. A small normal init (std 0.01, zero bias) gives every family a log(2) start.
    """
    for module in head.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            with torch.no_grad():
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


@register_detector
def vgg16(pretrained: bool = False, **kwargs) -> Detector:
    """VGG-16 (Simonyan & Zisserman 2015): 13 conv layers and the 4096-wide classifier."""
    return timm_detector("vgg16", pretrained, **kwargs)


@register_detector
def resnet50(pretrained: bool = False, **kwargs) -> Detector:
    """ResNet-50 (He et al. 2016)."""
    return timm_detector("resnet50", pretrained, **kwargs)


@register_detector
def resnet101(pretrained: bool = False, **kwargs) -> Detector:
    """ResNet-101 (He et al. 2016)."""
    return timm_detector("resnet101", pretrained, **kwargs)


@register_detector
def inception_v3(pretrained: bool = False, **kwargs) -> Detector:
    """Inception-v3 (Szegedy et al. 2016); needs an input side of at least 75."""
    return timm_detector("inception_v3", pretrained, **kwargs)


@register_detector
def efficientnet_b4(pretrained: bool = False, **kwargs) -> Detector:
    """EfficientNet-B4 (Tan & Le 2019)."""
    return timm_detector("efficientnet_b4", pretrained, **kwargs)


@register_detector
def efficientnet_b4_st(pretrained: bool = False, **kwargs) -> Detector:
    """EfficientNetB4ST (Bonettini et al. 2020): EfficientNet-B4 whose embedding is trained with a Siamese
    triplet-margin loss, then its classifier with cross-entropy. The architecture is EfficientNet-B4; the
    training objective is what differs, so the detector carries ``objective = "triplet"`` and
    :class:`advdf.lit.DetectorModule` picks it up when its own ``objective`` is ``auto``."""
    detector = timm_detector("efficientnet_b4", pretrained, **kwargs)
    detector.objective = "triplet"
    return detector


@register_detector
def efficientnet_lite0(pretrained: bool = False, **kwargs) -> Detector:
    """EfficientNet-Lite0 (Tan & Le 2019, the mobile variant: no squeeze-excitation, ReLU6), timm's
    ``tf_efficientnet_lite0``; ImageNet weights offline with ``weights=pip:efficientnet_lite0``."""
    return timm_detector("tf_efficientnet_lite0", pretrained, **kwargs)


@register_detector
def efficientnet_lite0_st(pretrained: bool = False, **kwargs) -> Detector:
    """EfficientNetB4ST's recipe (triplet-trained embedding, then its classifier) on EfficientNet-Lite0: the
    stand-in where EfficientNet-B4 cannot be trained (no ImageNet weights offline, a CPU budget)."""
    detector = timm_detector("tf_efficientnet_lite0", pretrained, **kwargs)
    detector.objective = "triplet"
    return detector


@register_detector
def xception(pretrained: bool = False, **kwargs) -> Detector:
    """Xception (Chollet 2017) as used by FaceForensics++ (timm ``legacy_xception``), 299 px."""
    return timm_detector("legacy_xception", pretrained, **kwargs)


@register_detector
def densenet121(pretrained: bool = False, **kwargs) -> Detector:
    """DenseNet-121 (Huang et al. 2017)."""
    return timm_detector("densenet121", pretrained, **kwargs)


@register_detector
def mobilenetv2(pretrained: bool = False, **kwargs) -> Detector:
    """MobileNetV2 width 1.0 (Sandler et al. 2018)."""
    return timm_detector("mobilenetv2_100", pretrained, **kwargs)
