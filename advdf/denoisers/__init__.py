"""Denoising networks that sit in front of a detector: images in [0, 1] in, images in [0, 1] out."""

from advdf.denoisers.dae import DenoisingAutoencoder
from advdf.denoisers.hgd import DUNet

__all__ = ["DUNet", "DenoisingAutoencoder"]
