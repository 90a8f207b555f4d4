"""A registry of attack classes keyed by lower-case class name."""

from __future__ import annotations

import warnings

from advdf.errors import ConfigError

_ATTACKS: dict[str, type] = {}


def register_attack(cls: type) -> type:
    name = cls.__name__.lower()
    if name in _ATTACKS:
        warnings.warn(f"attack {name!r} registered twice; the later definition wins", stacklevel=2)
    _ATTACKS[name] = cls
    return cls


def list_attacks() -> list[str]:
    return sorted(_ATTACKS)


def create_attack(name: str, model, **kwargs):
    """Build a registered attack on ``model``."""
    if name.lower() not in _ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; registered: {', '.join(list_attacks())}")
    return _ATTACKS[name.lower()](model, **kwargs)
