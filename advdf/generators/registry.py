"""Registries of generators and their discriminators, and safe weight I/O.

``create_generator(name, image_size, checkpoint_path)`` builds a registered generator and loads local weights
strictly; ``create_discriminator`` does the same for the matching discriminator. Weights are read from safetensors
or from torch checkpoints with ``weights_only=True`` (no code is unpickled), in any of the layouts a user is likely to
hold: a bare state dict (advdf's safetensors, StarGAN's ``200000-G.ckpt``), an official training checkpoint that nests
it under a key (AttGAN's ``{"G": ...}``, U-GAT-IT's ``{"genA2B": ...}``), or a Lightning checkpoint whose module keeps
the network under ``generator.`` (``discriminator.`` for a discriminator).

Detectors and generators share the reader (:mod:`advdf.utils.weights`): mismatched and non-finite weights are
refused with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from advdf.registry import Registry
from advdf.utils.weights import load_strict, read_state_dict, save_state

GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")


def register_generator(fn: Callable) -> Callable:
    """Register a generator factory under its function name."""
    return GENERATORS.register(fn, fn.__name__)


def register_discriminator(fn: Callable) -> Callable:
    """Register a discriminator factory under its function name less ``_discriminator`` (the generator's name)."""
    return DISCRIMINATORS.register(fn, fn.__name__.removesuffix("_discriminator"))


def list_generators(pattern: str = "*") -> list[str]:
    return GENERATORS.names(pattern)


def list_discriminators(pattern: str = "*") -> list[str]:
    return DISCRIMINATORS.names(pattern)


def create_generator(name: str, image_size: int | None = None, checkpoint_path: str | Path | None = None,
                     **kwargs) -> nn.Module:
    """Build a registered generator.

    Args:
        name: a name from :func:`list_generators`.
        image_size: side of the square images; ``None`` takes the official default of the model.
        checkpoint_path: local weights (safetensors, or a torch / Lightning checkpoint), loaded strictly.
        **kwargs: the model's width and depth knobs and its attribute list.
    """
    factory = GENERATORS.get(name)
    model = factory(**kwargs) if image_size is None else factory(image_size=image_size, **kwargs)
    if checkpoint_path:
        load_weights(model, checkpoint_path, lightning_prefix="generator.")
    return model


def create_discriminator(name: str, image_size: int | None = None, checkpoint_path: str | Path | None = None,
                         **kwargs) -> nn.Module:
    """Build a registered generator's discriminator (same arguments as :func:`create_generator`; U-GAT-IT's
    takes ``kind="global"`` or ``"local"``)."""
    factory = DISCRIMINATORS.get(name)
    model = factory(**kwargs) if image_size is None else factory(image_size=image_size, **kwargs)
    if checkpoint_path:
        load_weights(model, checkpoint_path, lightning_prefix="discriminator.")
    return model


# --- weight I/O (advdf.utils.weights: safetensors or weights_only torch files, strict, finite) --------------
def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict as safetensors, atomically (a killed run leaves the old file or the new one)."""
    return save_state(model, path)


def read_weights(path: str | Path, key: str | None = None, lightning_prefix: str = "generator.") \
        -> dict[str, torch.Tensor]:
    """A state dict from ``path`` without unpickling code: a bare state dict (StarGAN's ``200000-G.ckpt``), the
    entry ``key`` of an official training checkpoint (``"G"``, ``"genA2B"``, ...), or the keys under
    ``lightning_prefix`` of a Lightning checkpoint."""
    return read_state_dict(path, lightning_prefix, key)


def load_weights(model: nn.Module, path: str | Path, lightning_prefix: str = "generator.") -> nn.Module:
    """Load the weights at ``path`` into ``model`` strictly; the official entry is the model's ``checkpoint_key``."""
    return load_strict(model, path, lightning_prefix, getattr(model, "checkpoint_key", None))
