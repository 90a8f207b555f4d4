"""Defenses applied at evaluation time, in front of the detector."""

from advdf.defenses.base import Defended, create_defense, list_defenses, register_defense
from advdf.defenses.transforms import JPEG, AverageSmoothing, GaussianSmoothing, MedianSmoothing, NoDefense

__all__ = [
    "Defended", "create_defense", "list_defenses", "register_defense", "JPEG", "AverageSmoothing",
    "GaussianSmoothing", "MedianSmoothing", "NoDefense",
]
