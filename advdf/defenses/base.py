"""Input-transformation defenses: ``forward(x) -> x'`` on [0, 1] images, applied before the detector."""

from __future__ import annotations

from torch import nn

from advdf.registry import Registry

DEFENSES = Registry("defense")


def register_defense(cls: type[nn.Module]) -> type[nn.Module]:
    return DEFENSES.register(cls, getattr(cls, "defense_name", None))


def list_defenses() -> list[str]:
    return DEFENSES.names()


def create_defense(name: str, **kwargs) -> nn.Module:
    return DEFENSES.get(name)(**kwargs)


class Defended(nn.Module):
    """A detector behind a defense: ``detector(defense(x))``."""

    def __init__(self, detector: nn.Module, defense: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.defense = defense

    def forward(self, x):
        return self.detector(self.defense(x))
