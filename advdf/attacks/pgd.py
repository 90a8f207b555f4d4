"""PGD — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

Norm: L-inf. BIM from a uniform random start in the eps-ball. Seed 001 runs it with the margin loss toward
"real" (``loss=margin targeted=true target=0``), 100 iterations, step 1/255, eps 16/255.

Args:
    model: detector on [0, 1] input.
    eps: budget (default 8/255).
    alpha: step size (default 2/255).
    steps: iterations (default 10).
    random_start: uniform start in the eps-ball (default True).
    **kwargs: ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime options.
"""

from __future__ import annotations

from torch import nn

from advdf.attacks.base import IterativeAttack
from advdf.attacks.registry import register_attack


@register_attack
class PGD(IterativeAttack):
    deterministic = False  # the random start
    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, alpha: float | str = 2 / 255, steps: int = 10,
                 random_start: bool = True, **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, random_start=random_start, **kwargs)
