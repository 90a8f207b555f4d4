"""LightningModules over advdf's plain-PyTorch objects."""

from advdf.lit.adv_detector_module import AdversarialDetectorModule
from advdf.lit.attgan_module import AttGANModule
from advdf.lit.attribute_module import AttributeClassifierModule
from advdf.lit.denoiser_module import DenoiserModule
from advdf.lit.detector_module import DetectorModule
from advdf.lit.ffm_module import FFMModule
from advdf.lit.gan_base import GANModule, gradient_penalty
from advdf.lit.stargan_module import StarGANModule
from advdf.lit.stgan_module import STGANModule
from advdf.lit.ugatit_module import UGATITModule

__all__ = ["AdversarialDetectorModule", "AttGANModule", "AttributeClassifierModule", "DenoiserModule",
           "DetectorModule", "FFMModule", "GANModule", "STGANModule", "StarGANModule", "UGATITModule",
           "gradient_penalty"]
