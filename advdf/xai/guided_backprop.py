"""Guided Backpropagation (Springenberg et al. 2015): the input gradient with only positive gradients passed back
through every activation.

captum's version rewrites the backward of ``nn.ReLU`` modules only, so on networks built on other activations
(EfficientNet's SiLU, ReLU6, GELU) it silently returns the plain gradient. Here every activation module of
:data:`GUIDED` gets a backward hook that keeps the positive part of the gradient it passes to its input (for ReLU
exactly captum's rule). In-place activations are switched to out-of-place for the call (a backward hook cannot
wrap an in-place op) and restored afterwards. A model with no such module is refused with one line: its
activations are functional calls no hook can reach, and its "guided" map would be the plain gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from advdf.errors import ConfigError
from advdf.xai.base import Attribution, register_xai

GUIDED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Mish, nn.Hardswish)  # the detectors' activations


def _positive(_module: nn.Module, grad_input: tuple, _grad_output: tuple) -> tuple:
    return tuple(None if g is None else F.relu(g) for g in grad_input)


@contextlib.contextmanager
def guided(model: nn.Module) -> Iterator[int]:
    """Hooks on every activation module of ``model`` for the duration; yields how many were hooked."""
    acts = [m for m in model.modules() if isinstance(m, GUIDED)]
    if not acts:
        raise ConfigError(f"guided_backprop needs activation modules ({', '.join(t.__name__ for t in GUIDED)}); "
                          f"{type(model).__name__} has none (functional activations cannot be guided)")
    inplace = [m for m in acts if getattr(m, "inplace", False)]
    for m in inplace:
        m.inplace = False
    handles = [m.register_full_backward_hook(_positive) for m in acts]
    try:
        yield len(acts)
    finally:
        for h in handles:
            h.remove()
        for m in inplace:
            m.inplace = True


class _GuidedGradient:
    """The captum-style object :meth:`Attribution.attribute_raw` calls: ``attribute(x, target)``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with guided(self.model):
            logits = self.model(x)
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
        return grad


@register_xai
class GuidedBackprop(Attribution):
    name = "guided_backprop"
    cache_version = 2  # 2: guided on every activation module (1: captum's, ReLU modules only)

    def build(self, model):
        return _GuidedGradient(model)
