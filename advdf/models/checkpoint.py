"""Safe detector weight I/O: safetensors, or torch checkpoints read with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advdf.errors import CheckpointError
from advdf.utils.io import file_sha256


def save_detector(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict as safetensors, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    os.replace(tmp, path)
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights from safetensors or a (Lightning) torch checkpoint without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, OSError, EOFError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if isinstance(obj, dict) and "state_dict" in obj:
        # A Lightning checkpoint of advdf's DetectorModule stores the detector under "detector.".
        obj = {k.removeprefix("detector."): v for k, v in obj["state_dict"].items() if k.startswith("detector.")}
    return obj


def state_mismatch(model: nn.Module | dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                   show: int = 3) -> str | None:
    """What keeps ``state`` from loading strictly into ``model`` (a module or its state dict), in one line
    (``None`` when it fits): the first ``show`` missing keys, unexpected keys and shape mismatches, with their
    counts."""
    own = model if isinstance(model, dict) else model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f"{len(items)} {label} ({', '.join(items[:show])}{', ...' if len(items) > show else ''})"
             for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                  ("shape mismatches (checkpoint vs model)", shapes)) if items]
    return "; ".join(parts) or None


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_detector_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights at ``path`` into ``model`` strictly.

    A checkpoint of another architecture raises :class:`CheckpointError` naming the first missing and unexpected
    keys and shape mismatches; weights holding NaN or inf are refused, since they give non-finite logits that
    argmax would silently read as class 0.
    """
    state = read_state_dict(path)
    name = getattr(model, "name", None) or type(model).__name__
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise CheckpointError(f"checkpoint {path} does not fit {name}: {mismatch}")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"checkpoint {path} of {name} has non-finite weights in {len(bad)} tensors "
                              f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not fit {name}: {first}") from err
    return model


def file_digest(path: str | Path) -> str:
    """sha256 of a file, the identity of a checkpoint in cache keys (remembered per path, size and mtime)."""
    return file_sha256(path)
