"""Universal CDMAA: one protective perturbation for many photos (CMUA-Watermark's setting) through CDMAA's domain
combiner, regularizer and model combiner.

The perturbation delta (C, H, W) starts at a seeded uniform point of the eps-ball. Each epoch walks the crafting
photos in batches of ``craft_batch``; on each batch it takes ``steps`` signed steps along a momentum of the pooled
direction: the combiners applied to each generator's batch-mean gradient and loss
(:meth:`advdf.attacks.cdmaa._Disrupting.step_direction` with ``pool``), so with MGDA a step raises every
generator's mean distortion over the batch to first order. CMUA-Watermark instead averages per-photo perturbations
with momentum 0.5; pooling the gradients keeps the combiners' meaning on the universal objective. The momentum
accumulates L1-normalized directions as MI-FGSM (``decay`` 0.5 by default, CMUA's value).

:meth:`fit` crafts delta on a set of photos and keeps it; every later :meth:`run` adds it to the photos it is given
(the reproduce plan crafts on the train split and measures on unseen test photos). An attack that was never fitted
crafts on each batch it runs on (one perturbation shared by that batch) and keeps nothing. ``epochs=0`` leaves the
random start alone: uniform noise of the same budget, the baseline a universal perturbation must beat.

Args:
    model: :class:`~advdf.attacks.disruption.Translators`.
    eps, alpha, steps, domains, models, regularizer, ...: as :class:`advdf.attacks.cdmaa.CDMAA` (``steps`` per batch).
    epochs: passes over the crafting photos (0: the random start only).
    decay: momentum factor (0: plain signed steps).
    craft_batch: crafting photos per pooled step.
    seed: seeds the start.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from advdf.attacks.base import IterativeAttack, Perturbed, eval_mode
from advdf.attacks.cdmaa import _Disrupting, _objective
from advdf.attacks.objectives import Context
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError


@register_attack
class UniversalCDMAA(_Disrupting, IterativeAttack):
    deterministic = True  # the start comes from the attack's own seed

    def __init__(self, model: nn.Module, eps: float | str = 0.05, alpha: float | str = 0.01, steps: int = 10,
                 epochs: int = 1, decay: float = 0.5, craft_batch: int = 16, seed: int = 0,
                 domains: str = "uniform", models: str = "mgda", regularizer: str = "penalty", single_domain: int = 0,
                 single_model: int = 0, reg_eps: float = 1e-8, tau: float = 0.05, strict: bool = False,
                 masked: bool = False, scale: float = 2.0, eot: nn.Module | None = None, **kwargs) -> None:
        IterativeAttack.__init__(self, model, steps=steps, random_start=True,
                                 **_objective(tau, strict, masked, scale, eps=eps, alpha=alpha), **kwargs)
        self._setup(domains, models, regularizer, single_domain, single_model, reg_eps, eot)
        if self.return_point != "last":
            raise ConfigError("return_point: a universal perturbation is one point for every photo (keep 'last')")
        if epochs < 0:
            raise ConfigError(f"epochs must be at least 0 (0: the random start alone), got {epochs}")
        if not (math.isfinite(decay) and decay >= 0):
            raise ConfigError(f"decay must be a non-negative number, got {decay}")
        if craft_batch < 1:
            raise ConfigError(f"craft_batch must be positive, got {craft_batch}")
        self.epochs, self.decay, self.craft_batch, self.seed = int(epochs), float(decay), int(craft_batch), int(seed)
        self.delta: torch.Tensor | None = None  # (1, C, H, W) once fitted
        self.craft_backward_calls = 0
        self.craft_s = 0.0

    def craft(self, x: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """delta (1, C, H, W) in the eps-ball, ascending the mean distortion over photos ``x`` (attributes
        ``attrs``); its backward passes are added to ``backward_calls``."""
        gen = torch.Generator().manual_seed(self.seed)
        delta = (torch.rand((1, *x.shape[1:]), generator=gen) * 2 - 1).mul_(self.eps).to(x.device)
        momentum = torch.zeros_like(delta)
        self._t = 0
        for _ in range(self.epochs):
            for start in range(0, len(x), self.craft_batch):
                xb = x[start:start + self.craft_batch]
                ctx = self.objective.bind(xb, attrs[start:start + self.craft_batch])
                ctx = ctx.update(self._references(xb, ctx))
                for _ in range(self.steps):
                    _, _, d = self.step_direction((xb + delta).clamp(0.0, 1.0), ctx, pool=True)
                    momentum = self.decay * momentum + d / d.abs().mean().clamp_min(1e-12)
                    delta = (delta + self.alpha * momentum.sign()).clamp_(-self.eps, self.eps)
        return delta

    def fit(self, x: torch.Tensor, attrs: torch.Tensor) -> UniversalCDMAA:
        """Craft the universal perturbation on photos ``x`` ([0, 1], (N, C, H, W)) and keep it for every run."""
        if x.ndim != 4 or attrs.ndim != 2 or len(x) != len(attrs) or len(x) == 0:
            raise ConfigError(f"fit needs photos (N, C, H, W) and their attributes (N, A), got {tuple(x.shape)} and "
                              f"{tuple(attrs.shape)}")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ConfigError("fit needs finite photos in [0, 1]")
        self.backward_calls = 0
        t0 = time.perf_counter()
        with eval_mode(self.model):
            self.delta = self.craft(x, attrs.float()).detach()
        self.craft_s = time.perf_counter() - t0
        self.craft_backward_calls = self.backward_calls
        return self

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        delta = self.delta
        if delta is None:
            delta = self.craft(x, ctx["attrs"])
        elif delta.shape[1:] != x.shape[1:]:
            raise ConfigError(f"the universal perturbation was fitted on {tuple(delta.shape[1:])} photos; these are "
                              f"{tuple(x.shape[1:])}")
        x_adv = (x + delta.to(x.device)).clamp(0.0, 1.0)
        return Perturbed(x_adv, self.evaluate(x_adv, ctx.update(self._references(x, ctx))), 0)
