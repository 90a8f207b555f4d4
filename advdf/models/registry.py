"""A registry of detectors: one decorator, ``create_detector(name)``, ``list_detectors()``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from advdf.errors import ConfigError
from advdf.models.base import Detector
from advdf.models.checkpoint import load_detector_weights
from advdf.models.weights import load_backbone_weights
from advdf.registry import Registry

DETECTORS = Registry("detector")


def register_detector(fn: Callable[..., Detector]) -> Callable[..., Detector]:
    """Register a detector factory under its function name."""
    return DETECTORS.register(fn, fn.__name__)


def list_detectors(pattern: str = "*") -> list[str]:
    return DETECTORS.names(pattern)


def create_detector(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    weights: str | None = None,
    **kwargs,
) -> Detector:
    """Build a registered detector.

    Args:
        name: registered name (see :func:`list_detectors`).
        pretrained: load hub weights for the backbone (needs network access).
        checkpoint_path: local weights (``.safetensors``, or a ``.ckpt``/``.pt`` read with ``weights_only=True``).
        weights: an offline ImageNet weight source for the backbone, e.g. ``pip:efficientnet_lite0``
            (:mod:`advdf.models.weights`); the two-class head keeps its own initialization.
        **kwargs: forwarded to the factory (e.g. ``input_size``).
    """
    if weights and pretrained:
        raise ConfigError(f"model.pretrained=true (the hub) and model.weights={weights} both name the backbone's "
                          "weights; choose one")
    detector = DETECTORS.get(name)(pretrained=pretrained, **kwargs)
    if weights:
        load_backbone_weights(detector.backbone, weights)
    if checkpoint_path:
        load_detector_weights(detector, checkpoint_path)
    return detector
