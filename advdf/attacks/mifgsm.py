"""MI-FGSM — Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018.

Norm: L-inf. BIM with a momentum term that accumulates L1-normalized gradients:
``g_{t+1} = decay * g_t + grad / ||grad||_1`` (L1 per sample over C, H, W), then
``x_{t+1} = Proj(x_t + alpha * sign(g_{t+1}))``. The original paper uses eps = 16/255, 10 steps,
alpha = eps / steps and decay = 1.0. With ``decay=0`` it is exactly BIM (the normalization is a positive
per-sample scale, so the sign is unchanged). ``nesterov=True`` evaluates the gradient at the look-ahead point
``x_t + alpha * decay * g_t`` (NI-FGSM, Lin et al., ICLR 2020).

This class is also the loop TI-FGSM and SIM reuse: they override :meth:`MIFGSM._gradient` (what gradient is
taken) and :meth:`MIFGSM._smooth` (how it is transformed before normalization).

Args:
    model: detector on [0, 1] input.
    eps: budget (default 16/255).
    alpha: step size (default ``eps / steps``).
    steps: iterations (default 10).
    decay: momentum factor mu (default 1.0).
    nesterov: take the gradient at the Nesterov look-ahead point (default False).
    random_start: start from a uniform point of the eps-ball (default False, as the paper; seed 003's
        disruption loss has a zero gradient at the clean input, so its MI-FGSM base starts at random).
    **kwargs: ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime options.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.active import ActiveSamples, ReturnedPoint
from advdf.attacks.base import IterativeAttack, Perturbed, parse_budget
from advdf.attacks.objectives import Context, Output
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError


@register_attack
class MIFGSM(IterativeAttack):
    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, alpha: float | str | None = None,
                 steps: int = 10, decay: float = 1.0, nesterov: bool = False, random_start: bool = False,
                 **kwargs) -> None:
        if steps < 1:  # checked here too because the default alpha divides by it
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if alpha is None:
            alpha = parse_budget(eps, "eps") / steps
        super().__init__(model, eps, alpha=alpha, steps=steps, random_start=random_start, **kwargs)
        if decay < 0:
            raise ConfigError(f"decay must be non-negative, got {decay}")
        self.decay = float(decay)
        self.nesterov = nesterov

    def _gradient(self, x_adv: torch.Tensor, ctx: Context) -> tuple[Output, torch.Tensor, int]:
        """(objective output at ``x_adv``, gradient of its score there, forward+backward passes spent)."""
        out, _, grad = self.score_and_grad(x_adv, ctx)
        return out, grad, 1

    def _smooth(self, grad: torch.Tensor) -> torch.Tensor:
        """Transform applied to the raw gradient before normalization (identity for MI-FGSM)."""
        return grad

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        x_adv = x.clone()
        if self.random_start:
            x_adv = self.project(x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps), x)
        g = torch.zeros_like(x)
        active = ActiveSamples(len(x), x.device, self.early_stop)
        chosen = ReturnedPoint(self.return_point, len(x))
        calls = torch.zeros(len(x), dtype=torch.long, device=x.device)
        clean = None
        for step in range(self.steps):
            xa, xc, ca, ga = active.take(x_adv), active.take(x), active.take(ctx), active.take(g)
            point = xa + self.alpha * self.decay * ga if self.nesterov else xa
            out, grad, n = self._gradient(point, ca)
            calls[active.index] += n
            if step == 0 and not self.random_start:
                clean = out  # g = 0 and x_adv = x here, so the point is the clean input
            # Nesterov's output belongs to the look-ahead point (maybe outside the ball), not to x_adv: no early
            # exit on it, and it is never returned.
            keep = None
            if not self.nesterov:
                success = self.objective.success(out, ca)
                chosen.offer(active.index, xa, out, self.objective.score(out, ca), success)
                keep = active.retire(out, success)
            if keep is not None:  # fooled samples stay where they are
                xa, xc, ga, grad = xa[keep], xc[keep], ga[keep], grad[keep]
                if active.empty:
                    break
            grad = self._smooth(grad)
            # clamp_min: an all-zero gradient (saturated loss) must give a zero step, not NaN
            l1 = grad.abs().sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            ga = self.decay * ga + grad / l1
            g = active.put(g, ga)
            x_adv = active.put(x_adv, self.project(xa + self.alpha * ga.sign(), xc))
        # The output of the last step belongs to the previous iterate, so the final point needs one forward.
        x_adv, out = self.returned(chosen, x_adv, active.final(x_adv, ctx, self.evaluate), ctx)
        return Perturbed(x_adv, out, calls, clean=clean)
