"""APGD — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (Algorithm 1, the L-inf version).

Norm: L-inf. PGD with momentum whose step size adapts per sample, as AutoAttack's ``APGDAttack`` (the reference
implementation, ``fra31/auto-attack`` ``autoattack/autopgd_base.py``). The step size starts at ``2 * eps``. The
iterations are cut into windows of ``k_1 = max(int(0.22 N), 1)`` iterations, then
``k_{j+1} = max(k_j - max(int(0.03 N), 1), max(int(0.06 N), 1))``; at the end of each window the step size is
halved, and the sample restarts from its best point (with the gradient stored there), when either

1. the objective increased in at most ``rho * k_j`` of the window's iterations (each iterate against the one
   before it), or
2. the step size was not halved at the previous check and the best objective has not improved since then (not
   checked at the first window's end, as the reference).

For N = 100 the checks fall after iterations 22, 41, 57, 70, 80, 87, 93 and 99, the paper's checkpoints. One
iteration is ``z = P(x_k + eta * sign(grad))``, ``x_{k+1} = P(x_k + momentum * (z - x_k) + (1 - momentum) *
(x_k - x_{k-1}))`` (the first step is a plain signed step); a restart keeps the momentum term, which then points from
the iterate before the last to the best point (as the reference). The random start is a uniform draw scaled so its
largest coordinate is eps (the reference's). The paper's defaults: 100 iterations, ``rho = 0.75``, momentum 0.75,
the CE loss (APGD-CE); AutoAttack's "plus" version uses 5 restarts, Pinhasov et al. (seed 001) 100 iterations and 5
restarts at eps 16/255.

advdf's bookkeeping: ``steps`` iterations spend ``steps`` forward+backward passes per sample (the gradient at
the start and at each iterate but the last) plus one forward of the last iterate (the reference spends a backward
there too). The returned point of a sample is its best point: an adversarial one whenever one was met (the highest
objective among those), else the highest objective overall; its output was computed there, so no extra forward is
spent. Restarts after the first attack only the samples not fooled yet, from a new random start; ``grad_calls`` add
up over restarts. ``early_stop`` freezes a sample at the first point that fools it (no further passes on it). The
DLR loss is not offered: it divides by ``z_pi1 - z_pi3`` and needs at least three classes, while detectors have two.

Args:
    model: detector on [0, 1] input.
    eps: L-inf budget (paper: 8/255 on CIFAR-10; default 8/255).
    steps: iterations N (paper: 100).
    n_restarts: random restarts (paper: 1 for APGD-CE in AutoAttack, 5 in its "plus" version).
    rho: condition-1 threshold on the fraction of increasing steps (paper: 0.75).
    momentum: weight of the new step against the previous direction, alpha in the paper (paper: 0.75).
    **kwargs: ``targeted``, ``target``, ``loss`` (``"ce"`` or ``"margin"``) or an ``objective``,
        ``batch_size``, ``precision``, ``channels_last``, ``compile``, ``early_stop``.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.base import Attack, Perturbed
from advdf.attacks.objectives import Context, map_output, put_rows, take_rows
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError


def apgd_checkpoints(steps: int) -> list[int]:
    """The iteration counts after which step sizes may halve (AutoAttack's windows; below ``steps``)."""
    window, shrink, smallest = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out: list[int] = []
    done = window
    while done < steps:
        out.append(done)
        window = max(window - shrink, smallest)
        done += window
    return out


@register_attack
class APGD(Attack):
    deterministic = False  # the random start
    cache_version = 2  # 2: AutoAttack's windows, restarts and start (sets crafted by version 1 are not reused)

    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, steps: int = 100, n_restarts: int = 1,
                 rho: float = 0.75, momentum: float = 0.75, **kwargs) -> None:
        if kwargs.get("loss") == "dlr":  # checked first: the loss registry does not know "dlr"
            raise ConfigError("APGD loss='dlr' needs at least 3 classes (it divides by z_pi1 - z_pi3) but "
                              "detectors have two classes; use loss=ce (or loss=margin)")
        super().__init__(model, eps, **kwargs)
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if n_restarts < 1:
            raise ConfigError(f"n_restarts must be at least 1, got {n_restarts}")
        if not 0 < rho <= 1:
            raise ConfigError(f"rho must be in (0, 1], got {rho}")
        if not 0 < momentum <= 1:
            raise ConfigError(f"momentum must be in (0, 1], got {momentum}")
        self.steps = int(steps)
        self.n_restarts = int(n_restarts)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.checkpoints = apgd_checkpoints(self.steps)
        # per restart of the last batch: (steps, n) step size used by each update, for inspection
        self.step_size_trace: list[torch.Tensor] = []

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        self.step_size_trace = []
        x_out, out_best, obj_out, adv_out, calls = self._run(x, ctx)
        for _ in range(1, self.n_restarts):
            todo = (~adv_out).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            xr, outr, objr, advr, callsr = self._run(x[todo], ctx[todo])
            calls[todo] += callsr
            better = (advr & ~adv_out[todo]) | ((advr == adv_out[todo]) & (objr > obj_out[todo]))
            sel = todo[better]
            x_out[sel], obj_out[sel], adv_out[sel] = xr[better], objr[better], advr[better]
            put_rows(out_best, sel, take_rows(outr, better))
        return Perturbed(x_out, out_best, calls)

    def _evaluate(self, x_adv: torch.Tensor, ctx: Context, with_grad: bool):
        """(output, objective, gradient or None) at ``x_adv``; one forward(+backward) pass."""
        if with_grad:
            return self.score_and_grad(x_adv, ctx)
        out = self.evaluate(x_adv, ctx)
        return out, self.objective.score(out, ctx), None

    def _run(self, x: torch.Tensor, ctx: Context):
        """One APGD run from a random start on the whole batch.

        Returns the best point per sample with its output, objective and adversarial flag, and the
        forward+backward passes spent per sample.
        """
        n = len(x)
        calls = torch.zeros(n, dtype=torch.long, device=x.device)
        trace = torch.full((self.steps, n), float("nan"), device=x.device)
        t = torch.empty_like(x).uniform_(-1, 1)
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)  # its largest coordinate is eps
        x0 = self.project(x + self.eps * t, x)
        out, f, grad = self._evaluate(x0, ctx, with_grad=True)
        calls += 1
        adv = self.objective.success(out, ctx)
        # what is returned: best adversarial point, else best objective (full batch, written as samples advance)
        x_out, out_best, obj_out, adv_out = x0.clone(), map_output(torch.clone, out), f.clone(), adv.clone()
        idx = torch.arange(n, device=x.device)  # original rows of the samples still iterated
        eta = torch.full((n,), 2 * self.eps, device=x.device)
        # the active samples' state (their context included), compacted when early_stop retires fooled ones
        s = {
            "x": x, "ctx": ctx, "cur": x0, "prev": x0, "grad": grad, "f": f, "eta": eta,
            "best": x0.clone(), "best_grad": grad.clone(), "fmax": f.clone(),
            "fmax_check": f.clone(), "reduced": torch.ones(n, dtype=torch.bool, device=x.device),
            "increases": torch.zeros(n, device=x.device),
        }
        if self.early_stop and bool(adv.any()):
            s = {k: v[~adv] for k, v in s.items()}
            idx = idx[~adv]
        checks = set(self.checkpoints)
        last_check = 0
        for k in range(self.steps):
            if len(idx) == 0:
                break
            eta_b = s["eta"].view(-1, 1, 1, 1)
            trace[k, idx] = s["eta"]
            z = self.project(s["cur"] + eta_b * s["grad"].sign(), s["x"])
            if k == 0:
                new = z
            else:
                step = self.momentum * (z - s["cur"]) + (1 - self.momentum) * (s["cur"] - s["prev"])
                new = self.project(s["cur"] + step, s["x"])
            last = k == self.steps - 1  # the last iterate needs its objective only, not a gradient
            out, f, grad = self._evaluate(new, s["ctx"], with_grad=not last)
            if not last:
                calls[idx] += 1
            adv = self.objective.success(out, s["ctx"])
            # the returned point: adversarial beats non-adversarial, then the higher objective
            better = (adv & ~adv_out[idx]) | ((adv == adv_out[idx]) & (f > obj_out[idx]))
            sel = idx[better]
            x_out[sel], obj_out[sel], adv_out[sel] = new[better], f[better], adv[better]
            put_rows(out_best, sel, take_rows(out, better))
            if last:
                break
            s["increases"] = s["increases"] + (f > s["f"]).float()
            s["prev"], s["cur"], s["grad"], s["f"] = s["cur"], new, grad, f
            up = f > s["fmax"]  # x_max of the paper: the highest objective so far
            s["fmax"] = torch.where(up, f, s["fmax"])
            s["best"][up], s["best_grad"][up] = new[up], grad[up]
            if k + 1 in checks:  # the end of a window of k + 1 - last_check iterations
                cond1 = s["increases"] <= self.rho * (k + 1 - last_check)
                cond2 = ~s["reduced"] & (s["fmax"] <= s["fmax_check"])
                halve = cond1 | cond2
                s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
                s["cur"][halve], s["grad"][halve] = s["best"][halve], s["best_grad"][halve]
                s["reduced"], s["fmax_check"] = halve, s["fmax"].clone()
                s["increases"] = torch.zeros_like(s["increases"])
                last_check = k + 1
            if self.early_stop and bool(adv.any()):
                s = {key: v[~adv] for key, v in s.items()}
                idx = idx[~adv]
        self.step_size_trace.append(trace)
        return x_out, out_best, obj_out, adv_out, calls
