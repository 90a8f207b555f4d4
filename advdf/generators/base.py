"""Conditional image-translation generators (seed 003's targets): the shared interface and condition helpers.

A :class:`Generator` maps images in [-1, 1], shape (N, 3, S, S), to images in [-1, 1] of the same shape, given a
condition ``c`` in the model's own encoding. An attack on such a model (CDMAA, Ruiz et al.) needs, per source image,
the condition of every target it iterates over; :meth:`Generator.condition` builds it from the source's CelebA
attributes ({0, 1}, in the order of :attr:`Generator.attributes`) and a target index into :attr:`Generator.domains`,
following each model's official test script, so an attacked condition is the one the model was meant to be used with.

Each network mirrors its official implementation's module names and nesting, so an official state dict loads
strictly (see :mod:`advdf.generators.registry`); small versions keep the shape and shrink the widths.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError

# The CelebA attribute sets the official models are trained on, in their order.
STARGAN_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
ATTGAN_ATTRIBUTES = ("Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
                     "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young")

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

# Attributes that cannot be on together: turning the key on turns these off (the official
# ``check_attribute_conflict`` of AttGAN-PyTorch's data.py; STGAN's data.py drops the beard pair).
EXCLUSIVE = {
    "Bald": ("Bangs",), "Receding_Hairline": ("Bangs",), "Bangs": ("Bald", "Receding_Hairline"),
    **{h: tuple(o for o in HAIR_COLOURS if o != h) for h in HAIR_COLOURS},
    "Straight_Hair": ("Wavy_Hair",), "Wavy_Hair": ("Straight_Hair",),
}
EXCLUSIVE_BEARD = {"Mustache": ("No_Beard",), "No_Beard": ("Mustache",)}


def flip_attribute(attrs: torch.Tensor, attributes: Sequence[str], index: int,
                   exclusive: dict[str, tuple[str, ...]] = EXCLUSIVE) -> torch.Tensor:
    """The target attributes of single-attribute editing: ``attrs`` (N, A) in {0, 1} with column ``index`` flipped
    and, where that turned it on, its ``exclusive`` partners turned off (AttGAN's and STGAN's test scripts)."""
    target = attrs.clone()
    target[:, index] = 1 - target[:, index]
    turned_on = target[:, index] == 1
    for other in exclusive.get(attributes[index], ()):
        if other in attributes:
            j = attributes.index(other)
            target[:, j] = torch.where(turned_on, torch.zeros_like(target[:, j]), target[:, j])
    return target


def check_image_size(name: str, image_size: int, factor: int, minimum: int | None = None) -> int:
    """``image_size`` as an int, or a one-line :class:`ConfigError` when ``name`` cannot take it."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ConfigError(f"{name} needs a positive integer image_size, got {image_size!r}")
    if image_size % factor or image_size < (minimum or factor):
        raise ConfigError(f"{name} needs an image_size divisible by {factor} and at least {minimum or factor}, "
                          f"got {image_size}")
    return image_size


def check_positive(name: str, **values: int) -> None:
    """A one-line :class:`ConfigError` for a width or depth knob that is not a positive integer."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} needs a positive integer {key}, got {value!r}")


class Generator(nn.Module, abc.ABC):
    """A conditional generator G(x, c): images in [-1, 1] (N, 3, S, S) -> images in [-1, 1] (N, 3, S, S).

    Args:
        image_size: the side S the model is built for.
        attributes: the CelebA attribute names the model is conditioned on, in its order.
        domains: the targets an attack iterates over (a subset of ``attributes`` for attribute editors).

    ``checkpoint_key`` names the entry that holds the generator in the official training checkpoint
    (``{"G": ...}`` for AttGAN, ``{"genA2B": ...}`` for U-GAT-IT; ``None`` where it is a bare state dict).
    """

    name: str = ""
    checkpoint_key: str | None = None

    def __init__(self, image_size: int, attributes: Sequence[str], domains: Sequence[str]) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.attributes: tuple[str, ...] = tuple(attributes)
        self.domains: tuple[str, ...] = tuple(domains)
        if len(set(self.attributes)) != len(self.attributes):
            raise ConfigError(f"{self.name} attributes repeat a name: {list(self.attributes)}")
        missing = [d for d in self.domains if self.attributes and d not in self.attributes]
        if missing or not self.domains:
            raise ConfigError(f"{self.name} domains must be a non-empty subset of its attributes; "
                              f"not among them: {missing}")

    # --- conditions ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def condition(self, attrs: torch.Tensor, domain: int) -> torch.Tensor | None:
        """The condition input that translates images with source attributes ``attrs`` (N, len(attributes)) in
        {0, 1} toward ``domains[domain]``, in the model's own encoding; ``None`` for an unconditional model."""

    def conditions(self, attrs: torch.Tensor) -> list[torch.Tensor | None]:
        """One condition per domain, in the order of :attr:`domains`."""
        return [self.condition(attrs, d) for d in range(len(self.domains))]

    def _edited_index(self, attrs: torch.Tensor, domain: int) -> int:
        """Check ``attrs`` and ``domain``; the column of ``attributes`` that ``domains[domain]`` edits."""
        if attrs.dim() != 2 or attrs.shape[1] != len(self.attributes):
            raise ValueError(f"{self.name} needs source attributes of shape (N, {len(self.attributes)}), "
                             f"got {tuple(attrs.shape)}")
        if not 0 <= int(domain) < len(self.domains):
            raise ConfigError(f"{self.name} has {len(self.domains)} domains, got domain {domain}")
        return self.attributes.index(self.domains[int(domain)])

    def _check_input(self, x: torch.Tensor, factor: int) -> None:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"{self.name} needs images (N, 3, H, W) with H and W divisible by {factor}, "
                             f"got {tuple(x.shape)}")

    # --- the translation ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The translated images in [-1, 1] for images ``x`` in [-1, 1] and condition ``c``."""
