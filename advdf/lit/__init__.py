"""LightningModules over advdf's plain-PyTorch objects."""

from advdf.lit.denoiser_module import DenoiserModule
from advdf.lit.detector_module import DetectorModule

__all__ = ["DenoiserModule", "DetectorModule"]
