"""Deepfake detectors: input in [0, 1], normalization inside, logits (N, 2) with 0 = real, 1 = fake."""

from advdf.models import gramnet, mesoinception, mesonet, timm_detectors  # noqa: F401  (register the detectors)
from advdf.models.base import FAKE, REAL, Detector
from advdf.models.checkpoint import load_detector_weights, read_state_dict, save_detector
from advdf.models.registry import create_detector, list_detectors, register_detector

__all__ = [
    "FAKE", "REAL", "Detector", "create_detector", "list_detectors", "register_detector",
    "load_detector_weights", "read_state_dict", "save_detector",
]
