"""Seed 001's XAI-based adversarial detection: attribution maps (captum) and Detect-ResNet50."""

from advdf.xai import guided_backprop, input_x_gradient, integrated_gradients, saliency  # noqa: F401  (register)
from advdf.xai.base import Attribution, create_xai, list_xai, normalize_maps, register_xai
from advdf.xai.detect_resnet import ATTACKED, REAL, DetectResNet50
from advdf.xai.guided_backprop import GuidedBackprop
from advdf.xai.input_x_gradient import InputXGradient
from advdf.xai.integrated_gradients import IntegratedGradients
from advdf.xai.saliency import Saliency

__all__ = [
    "ATTACKED", "REAL", "Attribution", "DetectResNet50", "GuidedBackprop", "InputXGradient", "IntegratedGradients",
    "Saliency", "create_xai", "list_xai", "normalize_maps", "register_xai",
]
