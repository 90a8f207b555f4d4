"""LightningModules over advdf's plain-PyTorch objects."""

from advdf.lit.adv_detector_module import AdversarialDetectorModule
from advdf.lit.denoiser_module import DenoiserModule
from advdf.lit.detector_module import DetectorModule
from advdf.lit.ffm_module import FFMModule

__all__ = ["AdversarialDetectorModule", "DenoiserModule", "DetectorModule", "FFMModule"]
