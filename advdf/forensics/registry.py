"""A registry of forensic autoencoders: ``register_forensic``, ``create_forensic(name)``, ``list_forensics()``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from advdf.errors import ConfigError
from advdf.models.checkpoint import load_detector_weights
from advdf.registry import Registry

FORENSICS = Registry("forensic model")


def register_forensic(fn: Callable) -> Callable:
    """Register a forensic-model factory under its function name."""
    return FORENSICS.register(fn, fn.__name__)


def list_forensics(pattern: str = "*") -> list[str]:
    return FORENSICS.names(pattern)


def create_forensic(name: str, input_size: int = 256, checkpoint_path: str | Path | None = None, **kwargs):
    """Build a registered forensic autoencoder; ``checkpoint_path``: local weights (safetensors or a ``.ckpt``)."""
    if input_size % 16:
        raise ConfigError(f"forensic model {name!r} needs an input side divisible by 16, got {input_size}")
    model = FORENSICS.get(name)(input_size=input_size, **kwargs)
    if checkpoint_path:
        load_detector_weights(model, checkpoint_path)
    return model
