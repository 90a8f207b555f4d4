"""Input-transformation defenses: ``forward(x) -> x'`` on [0, 1] images, applied before the detector.

A defense can also be attacked adaptively: the attacker knows it and differentiates through it. ``forward`` is what
the defended detector really sees; ``through`` is what an adaptive attacker backpropagates through (the same
function for differentiable defenses, a surrogate such as BPDA for non-differentiable ones). :func:`attack_target`
picks the model an attack should run against: the bare detector, or :class:`AttackView` for an adaptive defense.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.registry import Registry

DEFENSES = Registry("defense")


def register_defense(cls: type[nn.Module]) -> type[nn.Module]:
    return DEFENSES.register(cls, getattr(cls, "defense_name", None))


def list_defenses() -> list[str]:
    return DEFENSES.names()


def create_defense(name: str, **kwargs) -> nn.Module:
    return DEFENSES.get(name)(**kwargs)


class Defense(nn.Module):
    """Base class of advdf's defenses.

    Args:
        adaptive: whether an attack run against this defense differentiates through it (the attacker knows the
            defense); otherwise attacks see the bare detector.
        eot_samples: draws averaged per attack forward (Expectation over Transformation), for defenses whose
            ``through`` is random; 1 for deterministic ones.
    """

    # Part of the keys of the sets attacked through a defense and of evaluated cells (with the defense's own):
    # bump it when what a defense computes changes, so those are recomputed.
    cache_version: int = 1

    def __init__(self, adaptive: bool = False, eot_samples: int = 1) -> None:
        super().__init__()
        if int(eot_samples) != eot_samples or eot_samples < 1:
            raise ConfigError(f"eot_samples must be a positive integer, got {eot_samples}")
        self.adaptive = bool(adaptive)
        self.eot_samples = int(eot_samples)

    def through(self, x: torch.Tensor) -> torch.Tensor:
        """What an adaptive attacker backpropagates through; the defense itself when it is differentiable."""
        return self(x)


class Defended(nn.Module):
    """A detector behind a defense: ``detector(defense(x))``."""

    def __init__(self, detector: nn.Module, defense: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.defense = defense

    def forward(self, x):
        return self.detector(self.defense(x))


class AttackView(nn.Module):
    """What an adaptive attack optimizes: the detector's logits through the defense's ``through``.

    With ``defense.eot_samples = k > 1`` the logits are the mean over ``k`` draws (EOT); with ``k = 1`` it is a
    single ``detector(defense.through(x))``. The view changes no module's train/eval mode.
    """

    def __init__(self, detector: nn.Module, defense: Defense) -> None:
        super().__init__()
        self.detector = detector
        self.defense = defense
        self.training = detector.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = getattr(self.defense, "eot_samples", 1)
        out = self.detector(self.defense.through(x))
        for _ in range(k - 1):
            out = out + self.detector(self.defense.through(x))
        return out if k == 1 else out / k


def attack_target(detector: nn.Module, defense: nn.Module | None = None) -> nn.Module:
    """The model an attack should run against: ``detector`` unless ``defense`` is adaptive."""
    if defense is None or not getattr(defense, "adaptive", False):
        return detector
    return AttackView(detector, defense)
