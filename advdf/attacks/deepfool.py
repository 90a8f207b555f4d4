"""DeepFool — Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural
networks", CVPR 2016.

Norm: L2, minimum-norm. Each iteration linearizes the classifier at the current point and steps to the
closest linearized boundary. With ``f_k = Z_k - Z_y`` and ``w_k = grad f_k``, the step is
``r = (|f_l| / ||w_l|| + 1e-4) * w_l / ||w_l||`` toward the class ``l = argmin_{k != y} |f_k| / ||w_k||`` (the
reference implementation's stabilizer, 1e-4 on the distance to the boundary); the steps add
up to ``r_tot`` and the iterate is ``x + (1 + overshoot) * r_tot``. A sample stops as soon as it is fooled.
The paper's defaults: overshoot 0.02, at most 50 iterations.

advdf's choices:

* Two logits (every detector): the only other class is the boundary, ``f = Z_other - Z_y`` needs ONE backward
  per iteration for the whole batch (the samples do not interact). More logits: the Jacobian rows come from
  one backward per class over the batch (C backward passes after one forward), counted as C gradient calls.
* Per-sample stopping, vectorized: each iteration forwards only the samples not fooled yet; a sample's logits
  are those of the forward that found it fooled (the first one gives the clean logits), and samples still
  unfooled after ``steps`` iterations take one last forward (no backward) at their final point. A sample's
  ``grad_calls`` count the iterations in which its gradient was taken.
* No backward pass for a fooled sample: the first iteration checks the clean input in the forward+backward that
  steps from it; after a step that fooled at least half of its samples, the next iteration checks them in a
  forward without autograd, then forwards and backpropagates only the unfooled ones (otherwise check and
  gradient share one forward+backward).
* The iterate is clipped to [0, 1]: ``x_adv = clip(x + (1 + overshoot) * r_tot, 0, 1)``.
* ``targeted=True`` is supported for two logits only, where it means pushing toward ``target`` (the other
  class of the sample's source class); DeepFool itself is untargeted.
* ``eps`` (optional, default ``None``) caps the L2 norm: the final points are projected onto the L2 ball of
  radius ``eps`` (then clipped to [0, 1]) and the projected samples take one forward for their logits.
* ``early_stop`` has no effect: DeepFool always stops a sample once it is fooled.

Args:
    model: detector on [0, 1] input.
    eps: optional L2 cap (default None: no cap, as in the paper).
    steps: maximum iterations (paper: 50).
    overshoot: relative overshoot of the accumulated step (paper: 0.02).
    **kwargs: ``targeted``, ``target``, ``batch_size``, ``precision``, ``channels_last``, ``compile``.
        DeepFool has no loss: ``loss`` is not an option. It steps on logits, so an ``objective`` must be a
        :class:`~advdf.attacks.objectives.Classification` (anything else is a config error); KRA's masked
        wrapper of one is fine: each iteration evaluates the unfooled samples with their own context rows.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.base import Attack, Perturbed
from advdf.attacks.cw import project_l2
from advdf.attacks.objectives import Context
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError

NORM_FLOOR = 1e-12  # a zero gradient gives a zero step instead of NaN
STABILIZER = 1e-4  # added to each step's distance to the linearized boundary (the reference's)
SPLIT_FOOLED = 0.5  # share of samples the last step fooled above which the next check runs without autograd


@register_attack
class DeepFool(Attack):
    norm = "l2"
    eps_optional = True
    # 2: the stabilizer on the distance, as the reference (version 1 added it to the logit gap); 3: after a step that
    # fooled most samples, the unfooled ones take their gradient in a pass of their own (other rounding)
    cache_version = 3

    def __init__(self, model: nn.Module, eps: float | str | None = None, steps: int = 50, overshoot: float = 0.02,
                 **kwargs) -> None:
        if "loss" in kwargs:
            raise ConfigError("DeepFool steps to the linearized boundary of the logits; loss is not an option")
        own_loss = {"loss": "margin"} if kwargs.get("objective") is None else {}
        super().__init__(model, eps, **own_loss, **kwargs)
        self.require_classification()
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if overshoot < 0:
            raise ConfigError(f"overshoot must be non-negative, got {overshoot}")
        self.steps = int(steps)
        self.overshoot = float(overshoot)

    def _step_binary(self, xa: torch.Tensor, logits: torch.Tensor, goal: torch.Tensor,
                     keep: torch.Tensor) -> torch.Tensor:
        """Steps of the kept rows for two logits: one backward of ``f = Z_dst - Z_src`` over the batch."""
        dst = goal if self.targeted else 1 - goal
        f = logits.gather(1, dst[:, None]).squeeze(1) - logits.gather(1, (1 - dst)[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(f[keep].sum(), xa)
        w, f = grad[keep], f.detach()[keep]
        norm = w.flatten(1).norm(dim=1).clamp_min(NORM_FLOOR)
        return ((f.abs() / norm + STABILIZER) / norm).view(-1, 1, 1, 1) * w

    def _step_multiclass(self, xa: torch.Tensor, logits: torch.Tensor, goal: torch.Tensor,
                         keep: torch.Tensor) -> torch.Tensor:
        """Steps of the kept rows for C > 2 logits: one backward per class, then the closest boundary."""
        n_cls = logits.shape[1]
        lk, yk = logits[keep], goal[keep]
        grads = torch.stack([torch.autograd.grad(lk[:, k].sum(), xa, retain_graph=k < n_cls - 1)[0][keep]
                             for k in range(n_cls)], 1)  # (b, C, ...): the Jacobian rows of each sample
        rows = torch.arange(len(yk), device=xa.device)
        w = (grads - grads[rows, yk].unsqueeze(1)).flatten(2)  # (b, C, D): grad of Z_k - Z_y
        f = (lk - lk.gather(1, yk[:, None])).detach()  # (b, C): Z_k - Z_y
        norm = w.norm(dim=2).clamp_min(NORM_FLOOR)
        dist = (f.abs() / norm).scatter(1, yk[:, None], float("inf"))
        best = dist.argmin(1)
        d_l, norm_l, w_l = dist[rows, best], norm[rows, best], w[rows, best]
        return ((d_l + STABILIZER) / norm_l)[:, None].mul(w_l).view_as(xa[keep])

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        n = len(x)
        calls = torch.zeros(n, dtype=torch.long, device=x.device)
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        logits_out, clean = torch.empty(0), None
        idx = torch.arange(n, device=x.device)  # samples not fooled yet
        split = False  # the first iteration takes its gradients in the pass that checks the clean input
        for it in range(self.steps + 1):
            xa, ca = x_adv[idx], ctx[idx]
            if it == self.steps:  # out of iterations: the last points still need their logits
                logits_out[idx] = self.evaluate(xa, ca)
                break
            if split:
                logits = self.evaluate(xa, ca)
            else:
                xa.requires_grad_(True)
                logits = self.objective.output(self.forward, xa, ca)
            if it == 0:
                n_cls = logits.shape[1]
                if self.targeted and n_cls > 2:
                    raise ConfigError(f"DeepFool targeted=True needs a model with 2 logits, this one has {n_cls}; "
                                      "DeepFool is untargeted")
                clean = logits.detach()
                logits_out = logits.detach().clone()
            else:
                logits_out[idx] = logits.detach()
            keep = ~self.objective.success(logits.detach(), ca)
            if not bool(keep.any()):
                break
            goal = ca["goal"]
            if split:  # the gradients of the unfooled samples only, in a pass of their own
                xa, goal = xa[keep].requires_grad_(True), goal[keep]
                logits = self.objective.output(self.forward, xa, ca[keep])
                rows = torch.ones(len(xa), dtype=torch.bool, device=x.device)
            else:
                rows = keep
            if n_cls == 2:
                r, cost = self._step_binary(xa, logits, goal, rows), 1
            else:
                r, cost = self._step_multiclass(xa, logits, goal, rows), n_cls
            # Next iteration: a step usually reaches the boundary, so its check fools most samples; then a forward
            # without autograd to check them, and a forward+backward of the others, costs less than a
            # forward+backward of all (break-even near half fooled, a forward costing about half a backward pass).
            split = it == 0 or (1 - keep.float().mean().item()) >= SPLIT_FOOLED
            idx = idx[keep]
            calls[idx] += cost
            r_tot[idx] += r
            x_adv[idx] = (x[idx] + (1 + self.overshoot) * r_tot[idx]).clamp(0.0, 1.0)
        if self.eps is not None:
            x_adv, moved = project_l2(x_adv, x, self.eps)
            if bool(moved.any()):
                logits_out[moved] = self.evaluate(x_adv[moved], ctx[moved])
        return Perturbed(x_adv, logits_out, calls, clean=clean)
