"""LightningModules over advdf's plain-PyTorch objects."""

from advdf.lit.detector_module import DetectorModule

__all__ = ["DetectorModule"]
