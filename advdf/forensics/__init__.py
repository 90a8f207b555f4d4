"""Forensic autoencoders with latent zones (seed 002): ClassNSeg and ForensicTransfer, on one interface."""

from advdf.forensics import classnseg, forensic_transfer  # noqa: F401 - registers the models
from advdf.forensics.base import (
    FAKE_ZONE,
    REAL_ZONE,
    DetectorView,
    ZoneAutoencoder,
    activation_loss,
    label_of_zone,
    segmentation_loss,
    zone_of_label,
)
from advdf.forensics.classnseg import ClassNSeg
from advdf.forensics.forensic_transfer import ForensicTransfer
from advdf.forensics.masks import random_triangle_masks
from advdf.forensics.registry import create_forensic, list_forensics, register_forensic

__all__ = ["FAKE_ZONE", "REAL_ZONE", "ClassNSeg", "DetectorView", "ForensicTransfer", "ZoneAutoencoder",
           "activation_loss", "create_forensic", "label_of_zone", "list_forensics", "random_triangle_masks",
           "register_forensic", "segmentation_loss", "zone_of_label"]
