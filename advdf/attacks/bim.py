"""BIM / I-FGSM — Kurakin et al., "Adversarial Examples in the Physical World", ICLR-W 2017.

Norm: L-inf. Iterated FGSM with step ``alpha``, clipped to the eps-ball and [0, 1] after every step, no random
start. The original paper uses alpha = 1/255 and min(eps*255 + 4, 1.25*eps*255) steps.

Args:
    model: detector on [0, 1] input.
    eps: budget (default 8/255).
    alpha: step size (default 1/255).
    steps: iterations (default 10).
    **kwargs: ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime options.
"""

from __future__ import annotations

from torch import nn

from advdf.attacks.base import IterativeAttack
from advdf.attacks.registry import register_attack


@register_attack
class BIM(IterativeAttack):
    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, alpha: float | str = 1 / 255, steps: int = 10,
                 **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, random_start=False, **kwargs)
