"""The attack registry: classes keyed by lower-case class name."""

from __future__ import annotations

from advdf.registry import Registry

ATTACKS = Registry("attack")


def register_attack(cls: type) -> type:
    return ATTACKS.register(cls)


def list_attacks() -> list[str]:
    return ATTACKS.names()


def create_attack(name: str, model, **kwargs):
    """Build a registered attack on ``model``."""
    return ATTACKS.get(name.lower())(model, **kwargs)
