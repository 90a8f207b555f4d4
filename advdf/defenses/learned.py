"""A defense that is a trained denoising network (HGD's DUNET, a denoising autoencoder, ...) in front of the detector.

The network is built from the config's ``denoiser`` and its weights read from ``checkpoint`` (safetensors, written
by ``python train.py task=denoiser defense=<name> model=<detector>``). At evaluation the denoiser is frozen and in
eval mode; an adaptive attacker backpropagates through it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from advdf.defenses.base import Defense, register_defense
from advdf.errors import CheckpointError


@register_defense
class LearnedDenoiser(Defense):
    """``denoiser(x)`` with frozen weights.

    Args:
        denoiser: the network, images in [0, 1] in and out, same shape.
        name: the defense's config name (``hgd``, ``dae``, ...), used to say how to train a missing checkpoint.
        checkpoint: safetensors file of the denoiser's state dict, loaded strictly; None keeps the given weights.
        training: the recipe ``train.py task=denoiser`` trains this denoiser with (kept as ``self.recipe``).
        adaptive, eot_samples: see :class:`advdf.defenses.Defense`.
    """

    cache_version = 1  # bump when what this defense computes changes (its sets and cells are recomputed)

    defense_name = "denoiser"

    def __init__(self, denoiser: nn.Module, name: str = "denoiser", checkpoint: str | None = None,
                 training: dict[str, Any] | DictConfig | None = None, adaptive: bool = False,
                 eot_samples: int = 1) -> None:
        super().__init__(adaptive=adaptive, eot_samples=eot_samples)
        self.denoiser = denoiser
        self.name = name
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.recipe = dict(OmegaConf.to_container(training, resolve=True) if isinstance(training, DictConfig)
                           else training or {})
        if checkpoint is not None:
            self._load(Path(checkpoint))
        self.denoiser.requires_grad_(False)
        self.train(False)

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise CheckpointError(f"no trained {self.name} denoiser at {path}; "
                                  f"train it: python train.py task=denoiser defense={self.name} model=<detector>")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read denoiser checkpoint {path}: {err}") from err
        try:
            self.denoiser.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"denoiser checkpoint {path} does not fit {type(self.denoiser).__name__}: "
                                  f"{first}") from err

    def train(self, mode: bool = True) -> LearnedDenoiser:
        """Stay in eval mode: batch-norm statistics of a trained denoiser must not move at evaluation."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x)
