"""SIM — Lin et al., "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", ICLR 2020.

Norm: L-inf. Momentum iterative attack (MI-FGSM) whose gradient is summed over ``m`` scaled copies of the
current point: ``grad = sum_{i<m} d J(x_t / 2^i) / d x_t`` (the derivative is taken with respect to ``x_t``,
so copy ``i`` contributes ``2^-i`` times the model's gradient at the scaled image, as in the paper's
``grad_x J(S_i(x))``). The copies are evaluated ``scales_per_pass`` at a time, concatenated along the batch
(one forward+backward of ``scales_per_pass * N`` images); a copy counts as one gradient call, so
``grad_calls = steps * m`` whatever the grouping, which changes neither the gradient nor the steps.
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
    scales_per_pass: copies per forward+backward; ``None`` (default) picks by device: all ``m`` in one pass on a
        GPU, which larger batches keep busy, one per pass elsewhere (on a CPU the ``m``-times larger batch ran
        slower per image than ``m`` passes).
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
    cache_version = 2  # 2: the copies are summed pass by pass (on a CPU one copy per pass): other rounding

    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, alpha: float | str | None = None,
                 steps: int = 10, decay: float = 1.0, m: int = 5, nesterov: bool = False,
                 scales_per_pass: int | None = None, **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, decay=decay, nesterov=nesterov, **kwargs)
        if m < 1:
            raise ConfigError(f"m (scale copies) must be at least 1, got {m}")
        if scales_per_pass is not None and scales_per_pass < 1:
            raise ConfigError(f"scales_per_pass must be null (by device) or at least 1, got {scales_per_pass}")
        self.m = int(m)
        self.scales_per_pass = scales_per_pass

    def _per_pass(self, device: torch.device) -> int:
        if self.scales_per_pass is not None:
            return min(self.scales_per_pass, self.m)
        return self.m if device.type == "cuda" else 1

    def _gradient(self, x_adv: torch.Tensor, ctx: Context) -> tuple[Output, torch.Tensor, int]:
        n = x_adv.shape[0]
        scales = 0.5 ** torch.arange(self.m, device=x_adv.device, dtype=x_adv.dtype)
        per_pass = self._per_pass(x_adv.device)
        out, grad = None, torch.zeros_like(x_adv)
        for first in range(0, self.m, per_pass):
            s = scales[first:first + per_pass].view(-1, 1, 1, 1, 1)
            copies = (s * x_adv.unsqueeze(0)).flatten(0, 1)  # (k*N, C, H, W), copy-major
            o, _, grads = self.score_and_grad(copies, ctx.repeat(len(s)))  # each copy with its sample's context
            if first == 0:  # the first N output rows are those of x_adv itself (scale 1)
                out = take_rows(o, slice(0, n))
            # chain rule through x / 2^i, then sum the copies
            grad += (s * grads.view(len(s), *x_adv.shape)).sum(0)
        return out, grad, self.m
