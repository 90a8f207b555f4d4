"""Defenses applied at evaluation time, in front of the detector, and the view an adaptive attack optimizes."""

from advdf.defenses.base import (
    AttackView,
    Defended,
    Defense,
    attack_target,
    create_defense,
    list_defenses,
    register_defense,
)
from advdf.defenses.learned import LearnedDenoiser
from advdf.defenses.transforms import JPEG, AverageSmoothing, GaussianSmoothing, MedianSmoothing, NoDefense

__all__ = [
    "AttackView", "Defended", "Defense", "attack_target", "create_defense", "list_defenses", "register_defense",
    "JPEG", "AverageSmoothing", "GaussianSmoothing", "MedianSmoothing", "NoDefense", "LearnedDenoiser",
]
