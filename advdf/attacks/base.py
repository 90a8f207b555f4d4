"""The shared base of advdf's attacks.

It owns the threat model and what every attack needs and none should re-implement: validating the budget,
putting the model in eval mode and restoring every submodule's mode afterwards, never mutating the input,
projection onto the eps-ball and the [0, 1] box, batching, per-sample bookkeeping (gradient calls, queries,
the optional early exit) and the runtime options of the model call (precision, channels_last, torch.compile).

What is optimized is the attack's :class:`~advdf.attacks.objectives.Objective` (by default a
:class:`~advdf.attacks.objectives.Classification` built from ``loss``, ``targeted`` and ``target``): attacks
evaluate, score and test points only through :meth:`Attack.evaluate`, :meth:`Attack.score_and_grad` and the
objective, and carry each sample's :class:`~advdf.attacks.objectives.Context` along with its point.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from advdf.attacks.active import RETURN_POINTS, ActiveSamples, ReturnedPoint
from advdf.attacks.objectives import Classification, Context, Objective, Output, cat_outputs, map_output
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
class Perturbed:
    """What :meth:`Attack.perturb` found on one batch.

    Attributes:
        x_adv: the final points.
        output: the objective's output at ``x_adv`` (computed where the point was reached, never recomputed).
        grad_calls: forward+backward passes, an int (every sample) or a per-sample tensor.
        queries: per-sample gradient-free model evaluations (black-box attacks), ``None`` for none.
        clean: the output at the clean input when the attack computed it anyway, else ``None``.
    """

    x_adv: torch.Tensor
    output: Output
    grad_calls: int | torch.Tensor = 0
    queries: torch.Tensor | None = None
    clean: Output | None = None


@dataclass
class AttackOutput:
    """One attacked batch.

    Attributes:
        x_adv: adversarial images, same shape as the input, in [0, 1].
        logits: the model's logits on ``x_adv`` (reused for success, never recomputed). For an objective that
            reports no ``"logits"``, its first reported tensor (e.g. a segmenter's masks).
        success: per sample, the objective's goal was reached (classification: the target class, or any
            wrong one).
        grad_calls: per sample, forward+backward passes spent on it (int64, shape (N,), cpu).
        queries: per sample, gradient-free model evaluations spent on it (black-box attacks; zeros otherwise).
        clean_logits: like ``logits`` for the clean input when the attack computed them anyway (a first
            gradient step taken at ``x``), so callers need no extra forward pass; ``None`` otherwise.
        extras: the per-sample tensors the objective reports on ``x_adv`` (classification:
            ``{"logits": ...}``).
    """

    x_adv: torch.Tensor
    logits: torch.Tensor
    success: torch.Tensor
    grad_calls: torch.Tensor
    queries: torch.Tensor
    clean_logits: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def main_output(report: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tensor a result calls ``logits``: the reported ``"logits"``, else the first reported tensor."""
    return report["logits"] if "logits" in report else next(iter(report.values()))


def _detached(out: Output) -> Output:
    return map_output(lambda t: t.detach().float() if t.is_floating_point() else t.detach(), out)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate ``model`` in eval mode and restore each submodule's own mode afterwards."""
    training = [m for m in model.modules() if m.training]
    if not training:  # already in eval mode (the usual case): nothing to switch or restore
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        for m in training:
            m.training = True


class Attack(abc.ABC):
    """Base class: subclasses implement :meth:`perturb` on one batch.

    Args:
        model: a detector taking [0, 1] input (returning logits (N, C) for the default objective; any tensor
            or dict of tensors, batch first, for another objective).
        eps: budget in the attack's norm (pixel scale, e.g. 16/255 for L-inf). Minimum-norm L2 attacks accept
            ``None`` (no cap).
        targeted: attack toward ``target`` instead of away from the true label (default objective only).
        target: class index the targeted attack aims for (0 = "real"; default objective only).
        loss: ``"ce"`` or ``"margin"`` (seed 001's margin toward "real"; default objective only).
        batch_size: split inputs into chunks of this size (``None`` = one chunk).
        name: label used in results and cache keys (default: the class name, lower-case).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: autocast of the model call; the perturbation,
            projection and losses stay in float32.
        channels_last: run the model in channels_last memory format (restored afterwards).
        compile: call the model through ``torch.compile`` (compiled once per attack object).
        early_stop: freeze each sample once it is fooled (quick scans, minimum-norm use). Off by default: a paper
            table needs the full fixed-budget attack.
        objective: what the attack maximizes; ``None`` builds ``Classification(loss, targeted, target)`` (ce,
            untargeted, target 0 when unset). Given together with ``loss``, ``targeted`` or ``target`` it is a
            config error: those belong to the objective then.

    Budgets (``eps``, ``alpha``) accept numbers or fraction strings such as ``"16/255"``.
    """

    norm = "linf"
    black_box = False  # black-box attacks never call backward and count queries instead of gradient calls
    eps_optional = False  # minimum-norm attacks may run without a cap
    deterministic = True  # same input, same output; False for attacks that draw random numbers (seed them)
    needs_zones = False  # True: defined on a forensic autoencoder's zones (advdf.forensics), not on logits
    needs_generators = False  # True: attacks image-translation generators (advdf.attacks.disruption.Translators)
    # Part of every cached set's key: bump it in a subclass when a change alters what the attack computes (not for
    # docstrings or refactors), so its old cached sets stop being reused.
    cache_version = 1

    def __init__(
        self,
        model: nn.Module,
        eps: float | str | None = 8 / 255,
        targeted: bool | None = None,
        target: int | None = None,
        loss: str | None = None,
        batch_size: int | None = None,
        name: str | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,  # noqa: A002 - the option's public name
        early_stop: bool = False,
        objective: Objective | None = None,
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
        if objective is None:
            objective = Classification("ce" if loss is None else loss, bool(targeted),
                                       0 if target is None else target)
        elif loss is not None or targeted is not None or target is not None:
            raise ConfigError(f"{type(self).__name__} got an objective and loss/targeted/target; set "
                              "those on the objective instead")
        self.model = model
        self.eps = None if eps is None else float(eps)
        self.objective = objective
        # the objective's classification settings, for callers and labels (other objectives: none)
        self.targeted = bool(getattr(objective, "targeted", False))
        self.target = getattr(objective, "target", None)
        self.loss_name = getattr(objective, "loss_name", type(objective).__name__.lower())
        self.batch_size = batch_size
        self.name = name or type(self).__name__.lower()
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self.early_stop = early_stop
        self._compiled: nn.Module | None = None

    def __repr__(self) -> str:
        eps = "None" if self.eps is None else f"{self.eps:.5f}"
        return f"{type(self).__name__}(eps={eps}, norm={self.norm}, loss={self.loss_name}, targeted={self.targeted})"

    def require_classification(self) -> None:
        """Refuse an objective other than :class:`Classification` (attacks defined on logit margins)."""
        if not isinstance(self.objective, Classification):
            raise ConfigError(f"{type(self).__name__} works on classification logits; it needs a "
                              f"Classification objective, got {self.objective!r}")

    @abc.abstractmethod
    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        """Attack one batch ``x`` whose samples have the context ``ctx`` (bound by the objective)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.run(x, y).x_adv

    def run(self, x: torch.Tensor, y: torch.Tensor, context: Context | None = None) -> AttackOutput:
        """Attack ``x`` with per-sample targets ``y`` (true labels for classification).

        ``context`` adds per-sample fields to the one the objective binds (KRA passes its masks this way). The
        model's mode and ``x`` are left untouched.
        """
        if x.ndim != 4 or x.shape[0] != y.shape[0]:
            raise ConfigError(f"expected images (N, C, H, W) and labels (N, ...), got {tuple(x.shape)} and "
                              f"{tuple(y.shape)}")
        lo, hi = torch.aminmax(x)  # one pass: a NaN or inf anywhere makes lo or hi non-finite
        if not (torch.isfinite(lo) and torch.isfinite(hi)) or lo < 0 or hi > 1:
            raise ConfigError("attack input must be finite images in [0, 1] (normalization belongs inside the model)")
        ctx = self.objective.bind(x, y)
        if context is not None:
            ctx = ctx.update(context)
        chunk = self.batch_size or x.shape[0]
        parts: list[tuple[int, Perturbed]] = []
        with eval_mode(self.model), self._memory_format():
            for start in range(0, x.shape[0], chunk):
                rows = slice(start, start + chunk)
                xs = x[rows]
                parts.append((len(xs), self.perturb(xs.detach().clone(), ctx[rows])))
        output = cat_outputs([_detached(p.output) for _, p in parts])
        extras = self.objective.report(output)
        clean = None
        if all(p.clean is not None for _, p in parts):
            clean = main_output(self.objective.report(cat_outputs([_detached(p.clean) for _, p in parts])))
        calls = [torch.as_tensor(p.grad_calls, dtype=torch.long).expand(n).cpu() for n, p in parts]
        queries = [torch.zeros(n, dtype=torch.long) if p.queries is None else p.queries.detach().long().cpu()
                   for n, p in parts]
        return AttackOutput(
            x_adv=torch.cat([p.x_adv.detach() for _, p in parts]),
            logits=main_output(extras),
            success=self.objective.success(output, ctx),
            grad_calls=torch.cat(calls),
            queries=torch.cat(queries),
            clean_logits=clean,
            extras=extras,
        )

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

    def forward(self, x: torch.Tensor) -> Output:
        """The model's float32 output on ``x`` under the attack's precision, memory format and compilation."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model = self.model
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(self.model)
            model = self._compiled
        dtype = PRECISIONS[self.precision]
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return map_output(lambda t: t.float(), model(x))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> Output:
        """The model's output on ``x`` (logits for a detector), without the objective and without autograd."""
        return self.forward(x)

    # --- helpers for subclasses -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, z: torch.Tensor, ctx: Context) -> Output:
        """The objective's output at points ``z`` of the samples in ``ctx``: one forward, no autograd."""
        return self.objective.output(self.forward, z, ctx)

    def score_and_grad(self, z: torch.Tensor, ctx: Context) -> tuple[Output, torch.Tensor, torch.Tensor]:
        """One forward+backward at ``z``: (output, per-sample score, d score / d z), all detached."""
        z = z.detach().requires_grad_(True)
        output = self.objective.output(self.forward, z, ctx)
        score = self.objective.score(output, ctx)
        (grad,) = torch.autograd.grad(score.sum(), z)
        return map_output(torch.Tensor.detach, output), score.detach(), grad

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Onto the L-inf eps-ball around ``x`` intersected with [0, 1]."""
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp_(0.0, 1.0)


class IterativeAttack(Attack):
    """Signed-gradient ascent with projection: the loop FGSM, BIM and PGD share.

    Args:
        steps: gradient steps.
        alpha: step size (pixel scale).
        random_start: start from a uniform point of the eps-ball (PGD).
        return_point: ``last`` (default: the final iterate, as the references and the papers' tables, so the
            images equal torchattacks'), ``first`` (the first fooling iterate) or ``best`` (the highest-objective
            fooling iterate); see :class:`advdf.attacks.active.ReturnedPoint`. No extra forward pass either way.

    Subclasses change the step's direction through :meth:`step` (a raw-gradient step: seed 002's IAP).
    """

    max_alpha = 1.0  # a signed step beyond the [0, 1] box is meaningless

    def __init__(self, model: nn.Module, eps: float | str = 8 / 255, alpha: float | str = 2 / 255, steps: int = 10,
                 random_start: bool = False, return_point: str = "last", **kwargs) -> None:
        super().__init__(model, eps, **kwargs)
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if return_point not in RETURN_POINTS:
            raise ConfigError(f"unknown return_point {return_point!r}; choose one of {', '.join(RETURN_POINTS)}")
        self.return_point = return_point
        alpha = parse_budget(alpha, "alpha")
        if not 0 < alpha <= self.max_alpha:
            raise ConfigError(f"alpha must be in (0, {self.max_alpha:g}], got {alpha}")
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.random_start = random_start

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        """The update added to the iterate before projection, from the score's gradient (ascent)."""
        return self.alpha * grad.sign()

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        x_adv = x.clone()
        if self.random_start:
            x_adv = self.project(x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps), x)
        active = ActiveSamples(len(x), x.device, self.early_stop)
        chosen = ReturnedPoint(self.return_point, len(x))
        calls = torch.zeros(len(x), dtype=torch.long, device=x.device)
        clean = None
        for step in range(self.steps):
            xa, xc, ca = active.take(x_adv), active.take(x), active.take(ctx)
            out, score, grad = self.score_and_grad(xa, ca)
            calls[active.index] += 1
            if step == 0 and not self.random_start:
                clean = out  # the first step is taken at x: this is the clean output
            success = self.objective.success(out, ca)
            chosen.offer(active.index, xa, out, score, success)
            keep = active.retire(out, success)
            if keep is not None:  # fooled samples stay where they are
                xa, xc, grad = xa[keep], xc[keep], grad[keep]
                if active.empty:
                    break
            x_adv = active.put(x_adv, self.project(xa + self.step(grad), xc))
        # The output of the last step belongs to the previous iterate, so the final point needs one forward.
        x_adv, out = self.returned(chosen, x_adv, active.final(x_adv, ctx, self.evaluate), ctx)
        return Perturbed(x_adv, out, calls, clean=clean)

    def returned(self, chosen: ReturnedPoint, x_adv: torch.Tensor, out: Output, ctx: Context) \
            -> tuple[torch.Tensor, Output]:
        """The points ``return_point`` picks, given the final iterates ``x_adv`` and their outputs."""
        if self.return_point == "last":
            return x_adv, out
        return chosen.result(x_adv, out, self.objective.score(out, ctx), self.objective.success(out, ctx))
