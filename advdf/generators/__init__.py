"""Conditional image-translation generators (seed 003): StarGAN, AttGAN, STGAN and U-GAT-IT, with their
discriminators, on one interface (images in [-1, 1], ``condition`` / ``conditions`` per target domain)."""

from advdf.generators import attgan, stargan, stgan, ugatit  # noqa: F401 - registers the models
from advdf.generators.attgan import AttGAN, AttGANDiscriminator
from advdf.generators.base import ATTGAN_ATTRIBUTES, STARGAN_ATTRIBUTES, Generator, flip_attribute
from advdf.generators.registry import (
    create_discriminator,
    create_generator,
    list_discriminators,
    list_generators,
    load_weights,
    read_weights,
    register_discriminator,
    register_generator,
    save_weights,
)
from advdf.generators.stargan import StarGAN, StarGANDiscriminator
from advdf.generators.stgan import STGAN, STGAN_DOMAINS, STGANDiscriminator
from advdf.generators.ugatit import UGATIT, UGATITDiscriminator

__all__ = ["ATTGAN_ATTRIBUTES", "STARGAN_ATTRIBUTES", "STGAN", "STGAN_DOMAINS", "UGATIT", "AttGAN",
           "AttGANDiscriminator", "Generator", "STGANDiscriminator", "StarGAN", "StarGANDiscriminator",
           "UGATITDiscriminator", "create_discriminator", "create_generator", "flip_attribute",
           "list_discriminators", "list_generators", "load_weights", "read_weights", "register_discriminator",
           "register_generator", "save_weights"]
