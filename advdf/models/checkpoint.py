"""Safe detector weight I/O: safetensors, or torch checkpoints read with ``weights_only=True``
(:mod:`advdf.utils.weights`; a Lightning checkpoint of advdf's DetectorModule holds the detector under ``detector.``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from advdf.utils.io import file_sha256
from advdf.utils.weights import load_strict, non_finite, save_state, state_mismatch
from advdf.utils.weights import read_state_dict as _read

__all__ = ["file_digest", "load_detector_weights", "non_finite", "read_state_dict", "save_detector",
           "state_mismatch"]


def save_detector(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict as safetensors, atomically."""
    return save_state(model, path)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights from safetensors or a (Lightning) torch checkpoint without unpickling code."""
    return _read(path, "detector.")


def load_detector_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights at ``path`` into ``model`` strictly (:func:`advdf.utils.weights.load_strict`)."""
    return load_strict(model, path, "detector.")


def file_digest(path: str | Path) -> str:
    """sha256 of a file, the identity of a checkpoint in cache keys (remembered per path, size and mtime)."""
    return file_sha256(path)
