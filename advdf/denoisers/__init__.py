"""Denoising networks that sit in front of a detector: images in [0, 1] in, images in [0, 1] out."""

from advdf.denoisers.dae import DenoisingAutoencoder
from advdf.denoisers.hgd import DUNet
from advdf.denoisers.td import TransferableDenoiser

__all__ = ["DUNet", "DenoisingAutoencoder", "TransferableDenoiser"]
