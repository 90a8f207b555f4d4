"""Square Attack — Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via
random search", ECCV 2020.

Norm: L-inf. Score-based random search, the paper's L-inf algorithm:

* initialization with vertical stripes: every column of every channel gets ``+eps`` or ``-eps`` (stripes of
  width 1), clipped to [0, 1]; this point is the first accepted iterate;
* each iteration draws, per sample, a square of side ``s = round(sqrt(p * H * W))`` (at least 1, at most the
  image side) at a uniformly random position, and sets the perturbation inside it to fresh ``±eps`` values,
  one per channel (redrawn until the candidate differs from the current point inside the square, as in the
  reference code); the candidate is accepted only if it strictly improves the objective;
* ``p`` follows the paper's piecewise-constant schedule, halving from ``p_init`` at iterations 10, 50, 200,
  500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query budget; for another budget the iteration index is
  rescaled to ``i * 10000 / n_queries`` as in the reference implementation.

The objective is the margin loss (the paper's choice; ``loss="ce"`` is the option). The paper tunes ``p_init``
per threat model (its ImageNet L-inf runs use 0.05); seed 001 (Pinhasov et al.) and AutoAttack use 0.8, seed
001 a budget of 5000 queries at eps = 16/255, which are the defaults here.

Queries, per sample and exact: one at the clean input (its logits are returned as ``clean_logits``; samples
already at their goal stop there with ``x_adv = x``), one for the stripes, then one per iteration until the
sample's accepted point reaches its goal (intrinsic early stop, as in the paper's query counts; ``early_stop``
changes nothing) or the total reaches ``n_queries``. Squares, their positions and values are drawn for all
active samples at once. The returned point is the last accepted one, whose output was already queried. The
model is only called through :meth:`Attack.forward` under ``torch.no_grad()``: ``grad_calls`` is 0 and the
attack runs with autograd disabled or in ``torch.inference_mode()``.

Args:
    model: detector on [0, 1] input.
    eps: L-inf budget (default 16/255, seed 001).
    n_queries: query budget per sample, the clean query included (default 5000, seed 001; the paper used
        10,000).
    p_init: initial fraction of pixels changed per iteration (default 0.8, seed 001).
    loss: ``"margin"`` (default, the paper's) or ``"ce"``; not with an ``objective``, which then replaces it.
    **kwargs: ``targeted``, ``target`` (seed 001: ``targeted=True target=0``), ``batch_size``, runtime options.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advdf.attacks.base import Attack, Perturbed
from advdf.attacks.objectives import Context, map_output, put_rows, take_rows
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError

# (upper end of the phase on the 10,000-query scale, divisor of p_init) after the first 10 iterations
P_SCHEDULE = ((50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
              (10000, 512))
MAX_REDRAWS = 100  # square values redrawn at most this often when they would leave the candidate unchanged


def p_selection(p_init: float, it: int, n_queries: int) -> float:
    """Fraction of pixels changed at iteration ``it`` of a budget of ``n_queries`` (the paper's schedule)."""
    it = int(it / n_queries * 10000)
    if it <= 10:
        return p_init
    for end, div in P_SCHEDULE:
        if it <= end:
            return p_init / div
    return p_init


def random_signs(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Uniform ±1 values of ``like``'s dtype and device."""
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype).mul_(2).sub_(1)


@register_attack
class Square(Attack):
    black_box = True
    deterministic = False

    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, n_queries: int = 5000, p_init: float = 0.8,
                 loss: str | None = None, **kwargs) -> None:
        if loss is None and kwargs.get("objective") is None:
            loss = "margin"  # the paper's objective
        super().__init__(model, eps, loss=loss, **kwargs)
        if n_queries < 2:
            raise ConfigError(f"n_queries must be at least 2 (the clean query and the stripes), got {n_queries}")
        if not 0 < p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init}")
        self.n_queries = int(n_queries)
        self.p_init = float(p_init)

    def _side(self, it: int, h: int, w: int) -> int:
        """Side of the square at iteration ``it``: round(sqrt(p * H * W)), between 1 and the image side."""
        s = int(round(math.sqrt(p_selection(self.p_init, it, self.n_queries) * h * w)))
        return min(max(s, 1), h, w)

    def _candidate(self, xc: torch.Tensor, xb: torch.Tensor, s: int) -> torch.Tensor:
        """New ``±eps`` values in a random s x s square of each row's current point ``xb`` around ``xc``."""
        a, c, h, w = xc.shape
        top = torch.randint(0, h - s + 1, (a, 1), device=xc.device)
        left = torch.randint(0, w - s + 1, (a, 1), device=xc.device)
        rows = torch.arange(h, device=xc.device)
        cols = torch.arange(w, device=xc.device)
        in_rows = (rows >= top) & (rows < top + s)  # (a, h)
        in_cols = (cols >= left) & (cols < left + s)  # (a, w)
        mask = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # (a, 1, h, w)
        values = self.eps * random_signs((a, c, 1, 1), xc)
        pending = torch.arange(a, device=xc.device)
        for _ in range(MAX_REDRAWS):
            trial = (xc[pending] + values[pending]).clamp(0.0, 1.0)
            same = ((trial - xb[pending]).abs() < 1e-7) | ~mask[pending]
            pending = pending[same.flatten(1).all(1)]
            if pending.numel() == 0:
                break
            values[pending] = self.eps * random_signs((len(pending), c, 1, 1), xc)
        return torch.where(mask, (xc + values).clamp(0.0, 1.0), xb)

    @torch.no_grad()
    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        n, c, h, w = x.shape
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        clean = self.objective.output(self.forward, x, ctx)
        queries += 1
        best_x, best_out = x.clone(), map_output(torch.clone, clean)
        idx = (~self.objective.success(clean, ctx)).nonzero().squeeze(1)
        if idx.numel() > 0:
            # vertical stripes: one ±eps value per (sample, channel, column)
            xs = (x[idx] + self.eps * random_signs((len(idx), c, 1, w), x)).clamp(0.0, 1.0)
            out = self.objective.output(self.forward, xs, ctx[idx])
            queries[idx] += 1
            best_x[idx] = xs
            put_rows(best_out, idx, out)
        best_obj = self.objective.score(best_out, ctx)
        for it in range(self.n_queries - 2):
            idx = idx[~self.objective.success(take_rows(best_out, idx), ctx[idx])]
            if idx.numel() == 0:
                break
            cc = ctx[idx]
            candidate = self._candidate(x[idx], best_x[idx], self._side(it, h, w))
            out = self.objective.output(self.forward, candidate, cc)
            queries[idx] += 1
            obj = self.objective.score(out, cc)
            better = obj > best_obj[idx]
            rows = idx[better]
            best_x[rows], best_obj[rows] = candidate[better], obj[better]
            put_rows(best_out, rows, take_rows(out, better))
        return Perturbed(best_x, best_out, queries=queries, clean=clean)
