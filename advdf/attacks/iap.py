"""IAP — seed 002's image-dependent attack on forensic autoencoders: plain gradient descent on a zone objective.

xi_0 = 0; xi <- Clip_eps(xi - alpha * grad_x L(x + xi)) with the raw gradient (no sign), clipped to the eps-ball
and the image box after every step. The classification attack (``iap_cls``) minimizes L_act(x, 1 - l)
(:class:`~advdf.attacks.zones.ZoneActivation`); the segmentation attack (``iap_seg``) L_act(x, 0.45) +
1.8 L_seg(x, m_adv) against random-triangle masks (:class:`~advdf.attacks.zones.ZoneSegmentation`).

Pixel scale. Seed 002 states eps = 2.5 and alpha = 1.0 without a scale; advdf reads them on the 0-255 scale
(``pixel_scale: 255``, a config value). With x on 0-255, x_255 = 255 x, the gradient is grad_x / 255 and a step of
alpha * grad_x_255 on x_255 is ``alpha * grad_x / pixel_scale**2`` on advdf's [0, 1] images.

Args:
    model: a forensic autoencoder (:mod:`advdf.forensics`) on [0, 1] input.
    eps: L-inf budget on the ``pixel_scale`` scale (default 2.5).
    alpha: step size of the raw gradient on that scale (default 1.0).
    steps: iterations (default 20; iap_seg 100-500).
    pixel_scale: the scale ``eps`` and ``alpha`` are given on (255: 0-255; 1: advdf's [0, 1]).
    objective: default ``ZoneActivation()`` (the flip, IAP-cls).
    **kwargs: ``batch_size``, ``early_stop``, runtime options (see :class:`advdf.attacks.base.Attack`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advdf.attacks.base import IterativeAttack, parse_budget
from advdf.attacks.objectives import Objective
from advdf.attacks.registry import register_attack
from advdf.attacks.zones import ZoneActivation
from advdf.errors import ConfigError


def pixel_budget(value: float | str, pixel_scale: float, what: str) -> float:
    """A budget given on the ``pixel_scale`` scale, on advdf's [0, 1] scale; ConfigError unless positive."""
    if not (math.isfinite(float(pixel_scale)) and pixel_scale > 0):
        raise ConfigError(f"pixel_scale must be a positive number (255 for 0-255), got {pixel_scale}")
    out = parse_budget(value, what)
    if out < 0 or out > pixel_scale:
        raise ConfigError(f"{what} must be in [0, {pixel_scale:g}] on the pixel scale {pixel_scale:g}, got {value!r}")
    return out / pixel_scale


@register_attack
class IAP(IterativeAttack):
    needs_zones = True
    max_alpha = math.inf  # a raw-gradient step has no natural bound

    def __init__(self, model: nn.Module, eps: float | str = 2.5, alpha: float | str = 1.0, steps: int = 20,
                 pixel_scale: float = 255.0, objective: Objective | None = None, **kwargs) -> None:
        super().__init__(model, pixel_budget(eps, pixel_scale, "eps"), alpha=alpha, steps=steps,
                         random_start=False, objective=objective or ZoneActivation(), **kwargs)
        self.pixel_scale = float(pixel_scale)

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        return self.alpha * grad / self.pixel_scale**2
