"""The shared base of advdf's attacks.

It owns what every attack needs and none should re-implement: validating the budget, putting the model in
eval mode and restoring every submodule's mode afterwards, never mutating the input, projection onto the
eps-ball and the [0, 1] box, targeted mode (e.g. "toward real"), pluggable losses, batching, per-sample
bookkeeping (gradient calls, queries, the optional early exit) and the runtime options of the model call
(precision, channels_last, torch.compile).
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from advdf.attacks.losses import get_loss
from advdf.errors import ConfigError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_budget(value: float | int | str, what: str) -> float:
    """A budget as a float: ``0.0627``, ``16/255`` or ``"16/255"`` (what Hydra passes for ``attack.eps=16/255``)."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/")
            out = float(num) / float(den)
        else:
            out = float(value)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{what} must be a number or a fraction like 16/255, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{what} must be finite, got {value!r}")
    return out


@dataclass
class AttackOutput:
    """One attacked batch.

    Attributes:
        x_adv: adversarial images, same shape as the input, in [0, 1].
        logits: the model's logits on ``x_adv`` (reused for success, never recomputed).
        success: per sample, the attack reached its goal (target class, or any wrong class).
        grad_calls: per sample, forward+backward passes spent on it (int64, shape (N,)).
        queries: per sample, gradient-free model evaluations spent on it (black-box attacks; zeros otherwise).
        clean_logits: the logits of the clean input when the attack computed them anyway (a first gradient
            step taken at ``x``), so callers need no extra forward pass; ``None`` otherwise.
    """

    x_adv: torch.Tensor
    logits: torch.Tensor
    success: torch.Tensor
    grad_calls: torch.Tensor
    queries: torch.Tensor
    clean_logits: torch.Tensor | None = None


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate ``model`` in eval mode and restore each submodule's own mode afterwards."""
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode


class ActiveSamples:
    """The samples of a batch an attack still works on.

    Without the early exit every sample stays active and :meth:`take` returns tensors unchanged (no copies).
    With it, :meth:`retire` freezes the samples that reached their goal, together with the logits of the point
    they reached it at, so later steps spend no forward or backward pass on them.

    Args:
        n: batch size.
        device: where index tensors live.
        enabled: whether fooled samples are frozen (the attack's ``early_stop``).
    """

    def __init__(self, n: int, device: torch.device, enabled: bool) -> None:
        self.n = n
        self.enabled = enabled
        self.index = torch.arange(n, device=device)
        self.frozen_logits: torch.Tensor | None = None

    @property
    def full(self) -> bool:
        return len(self.index) == self.n

    @property
    def empty(self) -> bool:
        return len(self.index) == 0

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """The active rows of a per-sample tensor."""
        return t if self.full else t[self.index]

    def put(self, dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Write the active rows ``src`` into ``dst``; returns the updated tensor."""
        if self.full:
            return src
        dst[self.index] = src
        return dst

    def retire(self, logits: torch.Tensor, fooled: torch.Tensor) -> torch.Tensor | None:
        """Freeze the active samples marked ``fooled`` (their current point is final).

        Returns the keep-mask over the previously active rows, or ``None`` when nothing was retired.
        """
        if not self.enabled or not bool(fooled.any()):
            return None
        if self.frozen_logits is None:
            self.frozen_logits = logits.new_zeros(self.n, logits.shape[1])
        self.frozen_logits[self.index[fooled]] = logits[fooled]
        self.index = self.index[~fooled]
        return ~fooled

    def final_logits(self, x_adv: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Logits of the final points: frozen samples reuse theirs, active ones take one forward pass."""
        if self.frozen_logits is None:
            return forward(x_adv)
        out = self.frozen_logits
        if not self.empty:
            out[self.index] = forward(x_adv[self.index])
        return out


class Attack(abc.ABC):
    """Base class: subclasses implement :meth:`perturb` on one batch.

    Args:
        model: a detector taking [0, 1] input and returning logits (N, C).
        eps: budget in the attack's norm (pixel scale, e.g. 16/255 for L-inf). Minimum-norm L2 attacks accept
            ``None`` (no cap).
        targeted: attack toward ``target`` instead of away from the true label.
        target: class index the targeted attack aims for (0 = "real").
        loss: objective name, ``"ce"`` or ``"margin"`` (seed 001's margin toward "real").
        batch_size: split inputs into chunks of this size (``None`` = one chunk).
        name: label used in results and cache keys (default: the class name, lower-case).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: autocast of the model call; the perturbation,
            projection and losses stay in float32.
        channels_last: run the model in channels_last memory format (restored afterwards).
        compile: call the model through ``torch.compile`` (compiled once per attack object).
        early_stop: freeze each sample once it is fooled (quick scans, minimum-norm use). Off by default: a paper
            table needs the full fixed-budget attack.

    Budgets (``eps``, ``alpha``) accept numbers or fraction strings such as ``"16/255"``.
    """

    norm = "linf"
    black_box = False  # black-box attacks never call backward and count queries instead of gradient calls
    eps_optional = False  # minimum-norm attacks may run without a cap
    deterministic = True  # same input, same output; False for attacks that draw random numbers (seed them)

    def __init__(
        self,
        model: nn.Module,
        eps: float | str | None = 8 / 255,
        targeted: bool = False,
        target: int = 0,
        loss: str = "ce",
        batch_size: int | None = None,
        name: str | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,  # noqa: A002 - the option's public name
        early_stop: bool = False,
    ) -> None:
        if eps is None and not self.eps_optional:
            raise ConfigError(f"{type(self).__name__} needs a budget eps")
        if eps is not None:
            eps = parse_budget(eps, "eps")
            if self.norm == "linf" and not 0.0 <= eps <= 1.0:
                raise ConfigError(f"eps must be in [0, 1] (pixel scale, e.g. 16/255), got {eps!r}")
            if eps < 0:
                raise ConfigError(f"eps must be non-negative, got {eps!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown attack precision {precision!r}; choose one of {sorted(PRECISIONS)}")
        self.model = model
        self.eps = None if eps is None else float(eps)
        self.targeted = targeted
        self.target = target
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.batch_size = batch_size
        self.name = name or type(self).__name__.lower()
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self.early_stop = early_stop
        self._compiled: nn.Module | None = None
        self._clean_logits: torch.Tensor | None = None  # set by perturb() when it evaluates the clean input
        self._queries: torch.Tensor | None = None  # set by black-box perturb(): per-sample model evaluations

    def __repr__(self) -> str:
        eps = "None" if self.eps is None else f"{self.eps:.5f}"
        return f"{type(self).__name__}(eps={eps}, norm={self.norm}, loss={self.loss_name}, targeted={self.targeted})"

    @abc.abstractmethod
    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int | torch.Tensor]:
        """Attack one batch; ``y`` is the goal label. Returns (x_adv, logits on x_adv, gradient calls).

        Gradient calls are an int (the same for every sample) or a per-sample tensor. An attack that evaluates
        the clean input anyway may store those logits in ``self._clean_logits``; a black-box attack stores its
        per-sample query counts in ``self._queries``.
        """

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.run(x, y).x_adv

    def run(self, x: torch.Tensor, y: torch.Tensor) -> AttackOutput:
        """Attack ``x`` with true labels ``y``; the model's mode and ``x`` are left untouched."""
        if x.ndim != 4 or x.shape[0] != y.shape[0]:
            raise ConfigError(f"expected images (N, C, H, W) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ConfigError("attack input must be finite images in [0, 1] (normalization belongs inside the model)")
        goal = torch.full_like(y, self.target) if self.targeted else y
        chunk = self.batch_size or x.shape[0]
        x_advs, logits, calls, queries, cleans = [], [], [], [], []
        with eval_mode(self.model), self._memory_format():
            for xs, gs in zip(x.split(chunk), goal.split(chunk), strict=True):
                self._clean_logits, self._queries = None, None
                x_adv, lg, n_calls = self.perturb(xs.detach().clone(), gs)
                x_advs.append(x_adv.detach())
                logits.append(lg.detach().float())
                calls.append(torch.as_tensor(n_calls, dtype=torch.long).expand(len(xs)).cpu())
                queries.append(torch.zeros(len(xs), dtype=torch.long) if self._queries is None
                               else self._queries.detach().long().cpu())
                cleans.append(self._clean_logits)
        logits_all = torch.cat(logits)
        clean = torch.cat(cleans) if all(c is not None for c in cleans) else None
        return AttackOutput(torch.cat(x_advs), logits_all, self.succeeded(logits_all, goal), torch.cat(calls),
                            torch.cat(queries), clean)

    def succeeded(self, logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == goal if self.targeted else pred != goal

    # --- the model call -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _memory_format(self) -> Iterator[None]:
        if not self.channels_last:
            yield
            return
        self.model.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            self.model.to(memory_format=torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's float32 logits on ``x`` under the attack's precision, memory format and compilation."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model = self.model
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(self.model)
            model = self._compiled
        dtype = PRECISIONS[self.precision]
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(x).float()

    # --- helpers for subclasses -------------------------------------------------------------------------
    def objective_and_grad(self, x_adv: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward+backward: (logits, d objective / d x_adv). The logits are those of ``x_adv``."""
        x_adv = x_adv.detach().requires_grad_(True)
        logits = self.forward(x_adv)
        objective = self.loss_fn(logits, goal, self.targeted).sum()
        (grad,) = torch.autograd.grad(objective, x_adv)
        return logits.detach(), grad

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Onto the L-inf eps-ball around ``x`` intersected with [0, 1]."""
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp_(0.0, 1.0)


class IterativeAttack(Attack):
    """Signed-gradient ascent with projection: the loop FGSM, BIM and PGD share.

    Args:
        steps: gradient steps.
        alpha: step size (pixel scale).
        random_start: start from a uniform point of the eps-ball (PGD).
    """

    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, alpha: float | str = 2 / 255, steps: int = 10,
                 random_start: bool = False, **kwargs) -> None:
        super().__init__(model, eps, **kwargs)
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        alpha = parse_budget(alpha, "alpha")
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.random_start = random_start

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_adv = x.clone()
        if self.random_start:
            x_adv = self.project(x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps), x)
        active = ActiveSamples(len(x), x.device, self.early_stop)
        calls = torch.zeros(len(x), dtype=torch.long, device=x.device)
        for step in range(self.steps):
            xa, xc, ya = active.take(x_adv), active.take(x), active.take(y)
            logits, grad = self.objective_and_grad(xa, ya)
            calls[active.index] += 1
            if step == 0 and not self.random_start:
                self._clean_logits = logits  # the first step is taken at x: these are the clean logits
            keep = active.retire(logits, self.succeeded(logits, ya))
            if keep is not None:  # fooled samples stay where they are
                xa, xc, grad = xa[keep], xc[keep], grad[keep]
                if active.empty:
                    break
            x_adv = active.put(x_adv, self.project(xa + self.alpha * grad.sign(), xc))
        # The logits of the last step belong to the previous iterate, so the final point needs one forward.
        return x_adv, active.final_logits(x_adv, self.logits), calls
