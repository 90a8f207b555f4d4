"""The shared base of advdf's attacks.

It owns what every attack needs and none should re-implement: validating the budget, putting the model in
eval mode and restoring every submodule's mode afterwards, never mutating the input, projection onto the
eps-ball and the [0, 1] box, targeted mode (e.g. "toward real"), pluggable losses and batching.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from advdf.attacks.losses import get_loss
from advdf.errors import ConfigError


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
        grad_calls: forward+backward passes spent on the batch.
        clean_logits: the logits of the clean input when the attack computed them anyway (a first gradient
            step taken at ``x``), so callers need no extra forward pass; ``None`` otherwise.
    """

    x_adv: torch.Tensor
    logits: torch.Tensor
    success: torch.Tensor
    grad_calls: int
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


class Attack(abc.ABC):
    """Base class: subclasses implement :meth:`perturb` on one batch.

    Args:
        model: a detector taking [0, 1] input and returning logits (N, C).
        eps: L-inf budget in [0, 1] (pixel scale, e.g. 16/255).
        targeted: attack toward ``target`` instead of away from the true label.
        target: class index the targeted attack aims for (0 = "real").
        loss: objective name, ``"ce"`` or ``"margin"`` (seed 001's margin toward "real").
        batch_size: split inputs into chunks of this size (``None`` = one chunk).
        name: label used in results and cache keys (default: the class name, lower-case).

    Budgets (``eps``, ``alpha``) accept numbers or fraction strings such as ``"16/255"``.
    """

    norm = "linf"

    def __init__(
        self,
        model: nn.Module,
        eps: float | str = 8 / 255,
        targeted: bool = False,
        target: int = 0,
        loss: str = "ce",
        batch_size: int | None = None,
        name: str | None = None,
    ) -> None:
        eps = parse_budget(eps, "eps")
        if not 0.0 <= eps <= 1.0:
            raise ConfigError(f"eps must be in [0, 1] (pixel scale, e.g. 16/255), got {eps!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.eps = float(eps)
        self.targeted = targeted
        self.target = target
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.batch_size = batch_size
        self.name = name or type(self).__name__.lower()
        self._clean_logits: torch.Tensor | None = None  # set by perturb() when it evaluates the clean input

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps:.5f}, loss={self.loss_name}, targeted={self.targeted})"

    @abc.abstractmethod
    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Attack one batch; ``y`` is the goal label. Returns (x_adv, logits on x_adv, grad_calls).

        An attack that evaluates the clean input anyway may store those logits in ``self._clean_logits``.
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
        outs, cleans = [], []
        with eval_mode(self.model):
            for xs, gs in zip(x.split(chunk), goal.split(chunk), strict=True):
                self._clean_logits = None
                x_adv, logits, calls = self.perturb(xs.detach().clone(), gs)
                outs.append((x_adv.detach(), logits.detach(), calls))
                cleans.append(self._clean_logits)
        x_adv = torch.cat([o[0] for o in outs])
        logits = torch.cat([o[1] for o in outs])
        clean = torch.cat(cleans) if all(c is not None for c in cleans) else None
        return AttackOutput(x_adv, logits, self.succeeded(logits, goal), sum(o[2] for o in outs), clean)

    def succeeded(self, logits: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == goal if self.targeted else pred != goal

    # --- helpers for subclasses -------------------------------------------------------------------------
    def objective_and_grad(self, x_adv: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward+backward: (logits, d objective / d x_adv). The logits are those of ``x_adv``."""
        x_adv = x_adv.detach().requires_grad_(True)
        logits = self.model(x_adv)
        objective = self.loss_fn(logits, goal, self.targeted).sum()
        (grad,) = torch.autograd.grad(objective, x_adv)
        return logits.detach(), grad

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

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

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        x_adv = x.clone()
        if self.random_start:
            x_adv = self.project(x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps), x)
        for step in range(self.steps):
            logits, grad = self.objective_and_grad(x_adv, y)
            if step == 0 and not self.random_start:
                self._clean_logits = logits  # the first step is taken at x: these are the clean logits
            x_adv = self.project(x_adv + self.alpha * grad.sign(), x)
        # The logits of the last step belong to the previous iterate, so the final point needs one forward.
        return x_adv, self.logits(x_adv), self.steps
