"""A registry of detectors: one decorator, ``create_detector(name)``, ``list_detectors()``."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from pathlib import Path

from advdf.errors import ConfigError
from advdf.models.base import Detector
from advdf.models.checkpoint import load_detector_weights

_DETECTORS: dict[str, Callable[..., Detector]] = {}


def register_detector(fn: Callable[..., Detector]) -> Callable[..., Detector]:
    """Register a detector factory under its function name."""
    name = fn.__name__
    if name in _DETECTORS:
        warnings.warn(f"detector {name!r} registered twice; the later definition wins", stacklevel=2)
    _DETECTORS[name] = fn
    return fn


def list_detectors(pattern: str = "*") -> list[str]:
    return sorted(n for n in _DETECTORS if fnmatch.fnmatch(n, pattern))


def create_detector(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    **kwargs,
) -> Detector:
    """Build a registered detector.

    Args:
        name: registered name (see :func:`list_detectors`).
        pretrained: load hub weights for the backbone (needs network access).
        checkpoint_path: local weights (``.safetensors``, or a ``.ckpt``/``.pt`` read with ``weights_only=True``).
        **kwargs: forwarded to the factory (e.g. ``input_size``).
    """
    if name not in _DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    detector = _DETECTORS[name](pretrained=pretrained, **kwargs)
    if checkpoint_path:
        load_detector_weights(detector, checkpoint_path)
    return detector
