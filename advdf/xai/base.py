"""Attribution maps of a detector (seed 001's XAI maps), computed with captum, batched, normalized per sample.

An :class:`Attribution` maps images in [0, 1] (N, C, H, W) to maps of the same shape: captum's attribution for the
target class (the class the detector predicts, unless told otherwise), divided per sample by a high percentile of
its absolute value and clipped to [-1, 1], so maps of every method and detector share one scale before the
adversarial detector embeds them. A zero attribution stays zero.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.registry import Registry

XAI_METHODS = Registry("XAI method")


def register_xai(cls: type) -> type:
    """Register an :class:`Attribution` subclass under its ``name``."""
    return XAI_METHODS.register(cls, cls.name)


def list_xai() -> list[str]:
    return XAI_METHODS.names()


def create_xai(name: str, **kwargs) -> Attribution:
    return XAI_METHODS.get(name)(**kwargs)


def normalize_maps(attr: torch.Tensor, percentile: float) -> torch.Tensor:
    """``attr / q`` clipped to [-1, 1], q the ``percentile`` of ``|attr|`` per sample (0 for an all-zero map)."""
    flat = attr.detach().abs().flatten(1).float()
    q = torch.quantile(flat, percentile / 100.0, dim=1) if percentile < 100 else flat.amax(1)
    q = torch.where(q > 0, q, flat.amax(1))  # sparse maps: fall back to the maximum
    scale = torch.where(q > 0, q, torch.ones_like(q)).view(-1, *([1] * (attr.dim() - 1)))
    return (attr.detach().float() / scale).clamp_(-1, 1)


class Attribution(abc.ABC):
    """One captum attribution method.

    Args:
        percentile: per-sample normalization (see :func:`normalize_maps`); 100 divides by the maximum.
        abs: take the absolute value of the attribution first (captum's ``abs`` for Saliency).
        name: label of the maps in caches, checkpoints and tables (default: the method's registered name).
    """

    name: str = "attribution"
    # Part of the map cache's key (with the method's own): bump it when the shared computation (the per-sample
    # normalization, the target choice) changes what maps come out, so their cached maps are recomputed.
    cache_version: int = 1

    def __init__(self, percentile: float = 99.0, abs: bool = False, name: str | None = None) -> None:
        if name:
            self.name = name
        if not 0 < percentile <= 100:
            raise ConfigError(f"xai.percentile must lie in (0, 100], got {percentile}")
        self.percentile = float(percentile)
        self.abs = bool(abs)

    @abc.abstractmethod
    def build(self, model: nn.Module):
        """The captum object for ``model``."""

    def attribute_raw(self, method, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return method.attribute(x, target=target)

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Normalized maps of ``model`` (in eval mode) for images ``x``; ``target`` defaults to the predicted class."""
        if model.training:
            raise ConfigError("attribution maps are taken from a model in eval mode (call model.eval())")
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(1)
        with torch.enable_grad():
            attr = self.attribute_raw(self.build(model), x.detach().clone().requires_grad_(True), target)
        if self.abs:
            attr = attr.abs()
        maps = normalize_maps(attr, self.percentile)
        if not torch.isfinite(maps).all():
            raise FloatingPointError(f"{self.name} produced non-finite attributions")
        return maps

    def config(self) -> dict:
        return {"name": self.name, "percentile": self.percentile, "abs": self.abs}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.config().items() if k != 'name')})"
