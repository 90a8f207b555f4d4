"""Safe weight I/O for every network advdf trains or loads: safetensors, or torch checkpoints read with
``weights_only=True`` (never unpickling code), strict loads that name what does not fit, and no non-finite weights.

Detectors (:mod:`advdf.models.checkpoint`), forensic autoencoders and generators (:mod:`advdf.generators`) all
load through :func:`load_strict`; they differ only in where their weights sit inside a training checkpoint
(a Lightning ``state_dict`` prefix such as ``detector.``, or an official checkpoint's entry such as ``"G"``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advdf.errors import CheckpointError


def save_state(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict as safetensors, atomically (a killed run leaves the old file or the new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return path


def read_state_dict(path: str | Path, prefix: str = "detector.", key: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` without unpickling code.

    Args:
        path: safetensors, or a torch checkpoint (read with ``weights_only=True``).
        prefix: in a Lightning checkpoint (a dict with ``state_dict``), the network's keys start with this prefix,
            which is removed (advdf's modules hold their network as ``detector`` or ``generator``).
        key: the entry of an official training checkpoint that holds the network (``"G"``, ``"genA2B"``, ...),
            taken when the file is a dict with that entry.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, OSError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    if isinstance(obj.get("state_dict"), dict):
        obj = {k.removeprefix(prefix): v for k, v in obj["state_dict"].items() if k.startswith(prefix)}
        if not obj:
            raise CheckpointError(f"Lightning checkpoint {path} has no weights under {prefix!r}")
    elif key is not None and isinstance(obj.get(key), dict):
        obj = obj[key]
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path} is not a state dict: {len(bad)} entries are not tensors "
                              f"({_first(bad)})")
    return obj


def _first(items: list[str], show: int = 3) -> str:
    return ", ".join(items[:show]) + (", ..." if len(items) > show else "")


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
    parts = [f"{len(items)} {label} ({_first(items, show)})"
             for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                  ("shape mismatches (checkpoint vs model)", shapes)) if items]
    return "; ".join(parts) or None


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_strict(model: nn.Module, path: str | Path, prefix: str = "detector.", key: str | None = None) -> nn.Module:
    """Load the weights at ``path`` (see :func:`read_state_dict`) into ``model`` strictly.

    Another architecture's checkpoint raises :class:`CheckpointError` naming the first missing and unexpected keys
    and shape mismatches; weights holding NaN or inf are refused, since they give non-finite outputs downstream
    (a detector's argmax would silently read them as class 0, a generator's distortion as NaN).
    """
    state = read_state_dict(path, prefix, key)
    name = getattr(model, "name", None) or type(model).__name__
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise CheckpointError(f"checkpoint {path} does not fit {name}: {mismatch}")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"checkpoint {path} of {name} has non-finite weights in {len(bad)} tensors "
                              f"({_first(bad)})")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit {name}: {str(err).strip().splitlines()[0]}") from err
    return model
