"""Per-sample bookkeeping of the samples an attack still works on (the optional early exit)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from advdf.attacks.objectives import Context, Output, put_rows, take_rows, zeros_rows


class ActiveSamples:
    """The samples of a batch an attack still works on.

    Without the early exit every sample stays active and :meth:`take` returns its argument unchanged (no
    copies). With it, :meth:`retire` freezes the samples that reached their goal, together with the
    objective's output at the point they reached it (a tensor or a dict of tensors of any trailing shape), so
    later steps spend no forward or backward pass on them. :meth:`take` selects the active rows of points and
    of the :class:`Context` alike.

    Args:
        n: batch size.
        device: where index tensors live.
        enabled: whether fooled samples are frozen (the attack's ``early_stop``).
    """

    def __init__(self, n: int, device: torch.device, enabled: bool) -> None:
        self.n = n
        self.enabled = enabled
        self.index = torch.arange(n, device=device)
        self.frozen: Output | None = None

    @property
    def full(self) -> bool:
        return len(self.index) == self.n

    @property
    def empty(self) -> bool:
        return len(self.index) == 0

    def take(self, t: torch.Tensor | Context) -> torch.Tensor | Context:
        """The active rows of a per-sample tensor or context."""
        return t if self.full else t[self.index]

    def put(self, dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Write the active rows ``src`` into ``dst``; returns the updated tensor."""
        if self.full:
            return src
        dst[self.index] = src
        return dst

    def retire(self, output: Output, fooled: torch.Tensor) -> torch.Tensor | None:
        """Freeze the active samples marked ``fooled`` (their current point and ``output`` rows are final).

        Returns the keep-mask over the previously active rows, or ``None`` when nothing was retired.
        """
        if not self.enabled or not bool(fooled.any()):
            return None
        if self.frozen is None:
            self.frozen = zeros_rows(output, self.n)
        put_rows(self.frozen, self.index[fooled], take_rows(output, fooled))
        self.index = self.index[~fooled]
        return ~fooled

    def final(self, x_adv: torch.Tensor, ctx: Context,
              evaluate: Callable[[torch.Tensor, Context], Output]) -> Output:
        """Outputs at the final points: frozen samples reuse theirs, active ones take one evaluation."""
        if self.frozen is None:
            return evaluate(x_adv, ctx)
        if not self.empty:
            put_rows(self.frozen, self.index, evaluate(x_adv[self.index], ctx[self.index]))
        return self.frozen


RETURN_POINTS = ("last", "first", "best")


class ReturnedPoint:
    """Which iterate an iterative attack returns, per sample, from the points it evaluated anyway (no extra pass).

    - ``last``: the final iterate (the references' and the papers' protocol; the images equal torchattacks').
    - ``first``: the first iterate that fooled the model, else the final one: a sample fooled at step 3 and not at
      step 10 counts as fooled.
    - ``best``: among the fooling iterates the one of highest objective, else the highest-objective iterate.

    :meth:`offer` takes the evaluated points of the active rows; :meth:`result` the final points and picks.
    """

    def __init__(self, mode: str, n: int) -> None:
        self.mode, self.n = mode, n
        self.x: torch.Tensor | None = None
        self.out: Output | None = None
        self.score = self.adv = None

    def offer(self, rows: torch.Tensor, z: torch.Tensor, out: Output, score: torch.Tensor,
              adv: torch.Tensor) -> None:
        """Points ``z`` of the batch rows ``rows`` with their output, objective score and success."""
        if self.mode == "last":
            return
        if self.x is None:
            self.x = z.new_zeros((self.n, *z.shape[1:]))
            self.out = zeros_rows(out, self.n)
            self.score = score.new_full((self.n,), float("-inf"))
            self.adv = torch.zeros(self.n, dtype=torch.bool, device=z.device)
        had = self.adv[rows]
        if self.mode == "first":
            better = adv & ~had
        else:
            better = (adv & ~had) | ((adv == had) & (score > self.score[rows]))
        sel = rows[better]
        self.x[sel], self.score[sel], self.adv[sel] = z[better], score[better], adv[better]
        put_rows(self.out, sel, take_rows(out, better))

    def result(self, x_last: torch.Tensor, out_last: Output, score_last: torch.Tensor,
               adv_last: torch.Tensor) -> tuple[torch.Tensor, Output]:
        """The returned points and their outputs, given the final iterates of every row."""
        if self.mode == "last" or self.x is None:
            return x_last, out_last
        rows = torch.arange(self.n, device=x_last.device)
        if self.mode == "first":  # rows never fooled keep the final iterate
            self.offer(rows, x_last, out_last, score_last, adv_last)
            keep = ~self.adv
            self.x[keep] = x_last[keep]
            put_rows(self.out, keep, take_rows(out_last, keep))
        else:
            self.offer(rows, x_last, out_last, score_last, adv_last)
        return self.x, self.out
