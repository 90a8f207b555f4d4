"""NES — Ilyas et al., "Black-box Adversarial Attacks with Limited Queries and Information", ICML 2018.

Norm: L-inf. Score-based black-box attack: the gradient of the objective is estimated from model outputs only,
with natural evolution strategies and antithetic Gaussian sampling,
``g = 1 / (2 n sigma) * sum_{i<n} [L(x + sigma u_i) - L(x - sigma u_i)] u_i`` with ``u_i ~ N(0, I)``; as the
reference code (labsix/limited-blackbox-attacks), the estimate enters a momentum ``m <- mu m + (1 - mu) g``
(mu 0.9), the iterate takes a projected signed step ``x <- Proj(x + alpha * sign(m))``, and the step size anneals
on plateaus: when the mean objective over a step's queried points is lower than it was ``plateau_length`` steps
earlier, ``alpha`` is divided by ``plateau_drop`` (down to ``min_alpha``) and the window restarts. The query points
are not clipped to [0, 1] (clipping them would bias the estimate at the box); only iterates are. The paper's
query-limited setting uses sigma = 0.001, a population of 50 (25 antithetic pairs), eps = 0.05, learning rate
0.01 and a limit of 10,000 queries; seed 001 (Pinhasov et al.) runs step 1/255, 100 iterations and 5 restarts at
eps = 16/255, which are the defaults here.

advdf's loop, vectorized over the batch (momentum, step size and plateau window are per sample):

* one query at the clean input (its logits are returned as ``clean_logits``); samples already at their goal
  stop there with ``x_adv = x``;
* each of the ``restarts`` runs works on the samples not fooled yet: the first run starts at ``x`` (reusing the
  clean query), every further run at a uniform random point of the eps-ball (one query to evaluate it), with
  zero momentum and the initial step size;
* each iteration evaluates all ``2 * n_samples`` perturbed copies of all active samples in one batched forward
  (split into ``query_batch`` rows when set), takes the step, and spends one more query on the new iterate to
  check success, so an iteration costs exactly ``2 * n_samples + 1`` queries;
* a sample stops being queried as soon as an iterate reaches its goal (intrinsic, as in the paper's query
  counts; ``early_stop`` changes nothing). Unfooled samples return the iterate with the highest objective seen
  over all runs. Every returned point was queried, so its output needs no extra forward.

At most ``1 + restarts * steps * (2 * n_samples + 1) + (restarts - 1)`` queries per sample. The model is only
called through :meth:`Attack.forward` under ``torch.no_grad()``: no gradient is ever computed (``grad_calls``
is 0) and the attack runs with autograd disabled or in ``torch.inference_mode()``.

Args:
    model: detector on [0, 1] input.
    eps: L-inf budget (default 16/255, seed 001; the paper used 0.05).
    alpha: step size (default 1/255, seed 001; the paper's learning rate was 0.01).
    steps: iterations per run (default 100, seed 001).
    restarts: runs in all, the first from ``x`` and the others from random points (default 5, seed 001).
    n_samples: antithetic pairs per gradient estimate (default 25: the paper's population of 50).
    sigma: search standard deviation on the [0, 1] scale (default 0.001, the paper's).
    momentum: weight of the previous estimate, mu (default 0.9, the reference's; 0: the plain estimate).
    plateau_length: steps in the annealing window (default 5, the reference's).
    plateau_drop: divisor of the step size on a plateau (default 2, the reference's; 1: never anneal).
    min_alpha: smallest step size (default 5e-5, the reference's).
    query_batch: at most this many perturbed copies per forward (``None`` = all in one forward).
    **kwargs: ``targeted``, ``target``, ``loss`` (the paper's objective is the cross-entropy; seed 001 uses the
        margin toward "real": ``targeted=True target=0 loss=margin``) or an ``objective``, ``batch_size``,
        runtime options.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.base import Attack, Perturbed, parse_budget
from advdf.attacks.objectives import Context, Output, cat_outputs, map_output, put_rows, take_rows
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError


@register_attack
class NES(Attack):
    black_box = True
    deterministic = False
    cache_version = 2  # 2: the reference's momentum, plateau annealing and unclipped query points

    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, alpha: float | str = 1 / 255,
                 steps: int = 100, restarts: int = 5, n_samples: int = 25, sigma: float = 0.001,
                 momentum: float = 0.9, plateau_length: int = 5, plateau_drop: float = 2.0,
                 min_alpha: float | str = 5e-5, query_batch: int | None = None, **kwargs) -> None:
        super().__init__(model, eps, **kwargs)
        alpha = parse_budget(alpha, "alpha")
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if restarts < 1:
            raise ConfigError(f"restarts (runs in all) must be at least 1, got {restarts}")
        if n_samples < 1:
            raise ConfigError(f"n_samples (antithetic pairs per estimate) must be at least 1, got {n_samples}")
        if not sigma > 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        if plateau_length < 2:
            raise ConfigError(f"plateau_length must be at least 2 steps, got {plateau_length}")
        if not plateau_drop >= 1:
            raise ConfigError(f"plateau_drop must be at least 1 (1: never anneal), got {plateau_drop}")
        min_alpha = parse_budget(min_alpha, "min_alpha")
        if not 0 < min_alpha <= alpha:
            raise ConfigError(f"min_alpha must be in (0, alpha={alpha:g}], got {min_alpha}")
        if query_batch is not None and query_batch < 1:
            raise ConfigError(f"query_batch must be positive or null, got {query_batch}")
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.n_samples = int(n_samples)
        self.sigma = float(sigma)
        self.momentum = float(momentum)
        self.plateau_length = int(plateau_length)
        self.plateau_drop = float(plateau_drop)
        self.min_alpha = float(min_alpha)
        self.query_batch = query_batch

    def _query(self, x: torch.Tensor, ctx: Context) -> Output:
        """The objective's output at stacked points and contexts, at most ``query_batch`` rows a forward."""
        qb = self.query_batch
        if qb is None or len(x) <= qb:
            return self.objective.output(self.forward, x, ctx)
        return cat_outputs([self.objective.output(self.forward, x[i:i + qb], ctx[i:i + qb])
                            for i in range(0, len(x), qb)])

    def _estimate(self, x_adv: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        """NES estimate of the objective's gradient at each row of ``x_adv`` and the mean objective over its
        queried points (2 * n_samples queries per row). The points are not clipped to the box: the estimate
        stays unbiased at its faces."""
        k, a = self.n_samples, len(x_adv)
        u = torch.randn((k, *x_adv.shape), device=x_adv.device, dtype=x_adv.dtype)
        points = torch.cat([x_adv + self.sigma * u, x_adv - self.sigma * u])  # (2, k, a) order
        copies = ctx.repeat(2 * k)  # copy-major, like the points: each copy keeps its sample's context
        objective = self.objective.score(self._query(points.flatten(0, 1), copies), copies).view(2, k, a)
        weights = (objective[0] - objective[1]) / (2 * k * self.sigma)
        return (weights.view(k, a, 1, 1, 1) * u).sum(0), objective.mean((0, 1))

    @torch.no_grad()
    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        n = len(x)
        self.step_size_trace = []  # per run of the last batch: (steps, n) step size of each update
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        clean = self.objective.output(self.forward, x, ctx)
        queries += 1
        best_x, best_out = x.clone(), map_output(torch.clone, clean)
        best_obj = self.objective.score(clean, ctx)
        done = self.objective.success(clean, ctx)

        def record(idx: torch.Tensor, xa: torch.Tensor, cc: Context) -> torch.Tensor:
            """Query ``xa`` and keep each row's best point (a fooled one wins); returns the fooled mask."""
            out = self.objective.output(self.forward, xa, cc)
            obj = self.objective.score(out, cc)
            fooled = self.objective.success(out, cc)
            better = (obj > best_obj[idx]) | fooled
            rows = idx[better]
            best_x[rows], best_obj[rows] = xa[better], obj[better]
            put_rows(best_out, rows, take_rows(out, better))
            done[idx[fooled]] = True
            return fooled

        for run in range(self.restarts):
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xc, cc = x[idx], ctx[idx]
            if run == 0:
                xa = xc.clone()  # the clean query already evaluated this start
            else:
                xa = self.project(xc + torch.empty_like(xc).uniform_(-self.eps, self.eps), xc)
                queries[idx] += 1
                keep = ~record(idx, xa, cc)
                idx, xa, xc, cc = idx[keep], xa[keep], xc[keep], cc[keep]
            m = torch.zeros_like(xa)
            lr = torch.full((len(idx),), self.alpha, device=x.device)
            window = torch.zeros((len(idx), self.plateau_length), device=x.device)  # mean objective per step
            filled = torch.zeros(len(idx), dtype=torch.long, device=x.device)
            trace = torch.full((self.steps, n), float("nan"), device=x.device)
            self.step_size_trace.append(trace)
            for step in range(self.steps):
                if idx.numel() == 0:
                    break
                grad, level = self._estimate(xa, cc)
                m = self.momentum * m + (1 - self.momentum) * grad
                window = torch.cat([window[:, 1:], level[:, None]], 1)
                filled = (filled + 1).clamp_max(self.plateau_length)
                stalled = (filled == self.plateau_length) & (window[:, -1] < window[:, 0])
                lr = torch.where(stalled, (lr / self.plateau_drop).clamp_min(self.min_alpha), lr)
                filled = torch.where(stalled, torch.zeros_like(filled), filled)
                trace[step, idx] = lr
                xa = self.project(xa + lr.view(-1, 1, 1, 1) * m.sign(), xc)
                queries[idx] += 2 * self.n_samples + 1
                keep = ~record(idx, xa, cc)
                idx, xa, xc, cc = idx[keep], xa[keep], xc[keep], cc[keep]
                m, lr, window, filled = m[keep], lr[keep], window[keep], filled[keep]
        return Perturbed(best_x, best_out, queries=queries, clean=clean)
