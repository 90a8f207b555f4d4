"""FGSM — Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.

Norm: L-inf. One step of size eps along the sign of the loss gradient.

Args:
    model: detector on [0, 1] input.
    eps: budget (paper default 8/255 in advdf's configs; seed 000 uses up to 16/255).
    **kwargs: ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime options (see
        :class:`advdf.attacks.base.Attack`).
"""

from __future__ import annotations

from torch import nn

from advdf.attacks.base import IterativeAttack, parse_budget
from advdf.attacks.registry import register_attack


@register_attack
class FGSM(IterativeAttack):
    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, **kwargs) -> None:
        eps = parse_budget(eps, "eps")
        super().__init__(model, eps, alpha=max(eps, 1e-12), steps=1, random_start=False, **kwargs)
