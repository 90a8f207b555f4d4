"""Input-transformation defenses: ``forward(x) -> x'`` on [0, 1] images, applied before the detector."""

from __future__ import annotations

import warnings

from torch import nn

from advdf.errors import ConfigError

_DEFENSES: dict[str, type[nn.Module]] = {}


def register_defense(cls: type[nn.Module]) -> type[nn.Module]:
    name = getattr(cls, "defense_name", cls.__name__.lower())
    if name in _DEFENSES:
        warnings.warn(f"defense {name!r} registered twice; the later definition wins", stacklevel=2)
    _DEFENSES[name] = cls
    return cls


def list_defenses() -> list[str]:
    return sorted(_DEFENSES)


def create_defense(name: str, **kwargs) -> nn.Module:
    if name not in _DEFENSES:
        raise ConfigError(f"unknown defense {name!r}; registered: {', '.join(list_defenses())}")
    return _DEFENSES[name](**kwargs)


class Defended(nn.Module):
    """A detector behind a defense: ``detector(defense(x))``."""

    def __init__(self, detector: nn.Module, defense: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.defense = defense

    def forward(self, x):
        return self.detector(self.defense(x))
