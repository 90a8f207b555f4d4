"""SIM — Lin et al., "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", ICLR 2020.

Norm: L-inf. Momentum iterative attack (MI-FGSM) whose gradient is summed over ``m`` scaled copies of the
current point: ``grad = sum_{i<m} d J(x_t / 2^i) / d x_t`` (the derivative is taken with respect to ``x_t``,
so copy ``i`` contributes ``2^-i`` times the model's gradient at the scaled image, as in the paper's
``grad_x J(S_i(x))``). The ``m`` copies are concatenated along the batch and evaluated in ONE forward+backward
of size ``m * N``; that pass is counted as ``m`` gradient calls (its cost), so ``grad_calls = steps * m``.
The original paper uses eps = 16/255, 10 steps, alpha = eps / steps, decay = 1.0, m = 5;
``nesterov=True`` gives SI-NI-FGSM.

Args:
    model: detector on [0, 1] input.
    eps: budget (default 16/255).
    alpha: step size (default ``eps / steps``).
    steps: iterations (default 10).
    decay: momentum factor mu (default 1.0).
    m: number of scale copies, ``x / 2^0 ... x / 2^(m-1)`` (default 5).
    nesterov: Nesterov look-ahead, SI-NI-FGSM (default False).
    **kwargs: ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime options.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.mifgsm import MIFGSM
from advdf.attacks.objectives import Context, Output, take_rows
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError


@register_attack
class SIM(MIFGSM):
    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, alpha: float | str | None = None,
                 steps: int = 10, decay: float = 1.0, m: int = 5, nesterov: bool = False, **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, decay=decay, nesterov=nesterov, **kwargs)
        if m < 1:
            raise ConfigError(f"m (scale copies) must be at least 1, got {m}")
        self.m = int(m)

    def _gradient(self, x_adv: torch.Tensor, ctx: Context) -> tuple[Output, torch.Tensor, int]:
        n = x_adv.shape[0]
        scales = 0.5 ** torch.arange(self.m, device=x_adv.device, dtype=x_adv.dtype)
        copies = (scales.view(-1, 1, 1, 1, 1) * x_adv.unsqueeze(0)).flatten(0, 1)  # (m*N, C, H, W), copy-major
        out, _, grads = self.score_and_grad(copies, ctx.repeat(self.m))  # each copy with its sample's context
        # chain rule through x / 2^i, then sum the copies; the first N output rows are those of x_adv itself
        grad = (scales.view(-1, 1, 1, 1, 1) * grads.view(self.m, *x_adv.shape)).sum(0)
        return take_rows(out, slice(0, n)), grad, self.m
