"""CDMAA — Qiu, Du, Lu, "The Framework of Cross-Domain and Model Adversarial Attack against Deepfake", Future Internet
2022: one protective perturbation that disrupts several image-translation generators under all their conditions.

Norm: L-inf on the generators' [-1, 1] scale (``scale=2``: eps 0.05 there is 0.025 on advdf's [0, 1] images).
At every step, for each generator j, the distortions L_jk = MSE(G_j(x_adv, c_k), G_j(x, c_k)) of its domains k are
computed in one stacked forward and one backward (the K copies of the batch are separate leaves, so the one
backward gives every domain's gradient); a **domain combiner** turns them into g_j, a **regularizer** rescales g_j
by the generator's loss L_j = mean_k L_jk, and a **model combiner** turns the g_j into the step direction:

- domains: ``uniform`` (CDMAA: the gradient of L_j, the mean over domains), ``single`` (domain ``single_domain``),
  ``iterative`` (one domain per step, cycling), ``mgda`` (the min-norm point of the domain gradients);
- models: ``mgda`` (CDMAA: the min-norm point of the g_j, :mod:`advdf.attacks.min_norm`, so the step raises every
  generator's loss), ``uniform`` (their mean), ``single`` (generator ``single_model``), ``iterative`` (cycling);
- regularizers (:func:`advdf.attacks.min_norm.regularize`): ``none``, ``l2``, ``log``, ``penalty`` (CDMAA; a
  reconstruction of the paper's lost formula).

The base optimizer is I-FGSM (``CDMAA``, the paper's default), MI-FGSM (``CDMAAMomentum``) or APGD (``CDMAAAPGD``):
each is the shared attack loop of its namesake with this direction in place of the gradient (:data:`BASES`). They start from a
uniform point of the eps-ball (``random_start``, on by default, as Ruiz et al.'s LinfPGDAttack): at the clean input
every distortion is 0 and so is its gradient, and the paper's x_0 = x would never move. ``create_cdmaa(model, base=...)`` picks one. Defaults eps 0.05, alpha 0.01, 10 steps,
tau 0.05 on [-1, 1] come from the anchors (Ruiz et al.'s disrupting-deepfakes, CMUA-Watermark), which the paper
says it follows. The targets ``y`` of :meth:`Attack.run` are the images' source attributes
(:class:`advdf.attacks.disruption.Translators`).

Args:
    model: :class:`~advdf.attacks.disruption.Translators` (the generators under attack).
    eps, alpha: budget and step on the ``scale`` (default 0.05 and 0.01 on [-1, 1]).
    steps: iterations (default 10).
    domains, models, regularizer: the combiners above (defaults: ``uniform``, ``mgda``, ``penalty``).
    single_domain, single_model: which domain / generator (index) the ``single`` combiners use.
    reg_eps: the regularizers' epsilon (keeps ``log`` and ``penalty`` finite at step 0, where every L is 0).
    tau, strict, masked: the :class:`~advdf.attacks.disruption.Disruption` objective's options.
    eot: a transformation the protected photo will go through (e.g. ``advdf.defenses.JPEG(75, surrogate="kornia")``,
        an upload's re-encoding): the gradient steps differentiate through its ``through`` (a differentiable
        surrogate) against the outputs on the transformed clean image, so the protection survives it; the reported
        distortion stays the untransformed one.
    **kwargs: the base optimizer's own options (``random_start``, ``decay``, ``n_restarts``, ...), ``batch_size``.
"""

from __future__ import annotations

import torch
from torch import nn

from advdf.attacks.apgd import APGD
from advdf.attacks.base import IterativeAttack, Perturbed, parse_budget
from advdf.attacks.disruption import Disruption, Translators
from advdf.attacks.mifgsm import MIFGSM
from advdf.attacks.min_norm import REGULARIZERS, combine, min_norm_weights_batched, regularize
from advdf.attacks.objectives import Context
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError

COMBINERS = ("uniform", "single", "iterative", "mgda")


def _budget(value: float | str, scale: float, what: str) -> float:
    """A budget on the generators' scale (width ``scale``: 2 for [-1, 1]), on advdf's [0, 1] images."""
    out = parse_budget(value, what)
    if not 0 <= out <= scale:
        raise ConfigError(f"{what}={value} is outside [0, {scale:g}] on the generators' [-1, 1] scale")
    return out / scale


class _Disrupting:
    """The CDMAA direction in place of a base optimizer's gradient (mixed into I-FGSM, MI-FGSM and APGD)."""

    needs_generators = True
    deterministic = False  # the random start

    model: Translators
    objective: Disruption

    def _setup(self, domains: str, models: str, regularizer: str, single_domain: int, single_model: int,
               reg_eps: float, eot: nn.Module | None) -> None:
        if not isinstance(self.model, Translators):
            raise ConfigError(f"{type(self).__name__} attacks generators: give it advdf.attacks.Translators, got "
                              f"{type(self.model).__name__}")
        for what, value in (("domains", domains), ("models", models)):
            if value not in COMBINERS:
                raise ConfigError(f"unknown {what} combiner {value!r}; choose from {', '.join(COMBINERS)}")
        if regularizer not in REGULARIZERS:
            raise ConfigError(f"unknown regularizer {regularizer!r}; choose from {', '.join(REGULARIZERS)}")
        if not 0 <= single_model < len(self.model.names):
            raise ConfigError(f"single_model={single_model}: there are {len(self.model.names)} generators")
        if any(not 0 <= single_domain < len(self.model.domains(n)) for n in self.model.names) and domains == "single":
            raise ConfigError(f"single_domain={single_domain} is not a domain of every generator "
                              f"({ {n: len(self.model.domains(n)) for n in self.model.names} })")
        self.domains, self.models, self.regularizer = domains, models, regularizer
        self.single_domain, self.single_model, self.reg_eps = int(single_domain), int(single_model), float(reg_eps)
        self.eot = eot
        self.backward_calls = 0  # backward passes of the last run, over all generators and batches
        self._t = 0

    # --- which pairs a step looks at -----------------------------------------------------------------------
    def _step_models(self, t: int) -> list[str]:
        names = self.model.names
        if self.models == "single":
            return [names[self.single_model]]
        if self.models == "iterative":
            return [names[t % len(names)]]
        return names

    def _step_domains(self, name: str, t: int) -> list[int]:
        k = len(self.model.domains(name))
        if self.domains == "single":
            return [self.single_domain]
        if self.domains == "iterative":
            return [t % k]
        return list(range(k))

    def _full_output_needed(self) -> bool:
        return isinstance(self, APGD) or self.early_stop or getattr(self, "return_point", "last") != "last"

    # --- the model calls -----------------------------------------------------------------------------------
    def _distortion(self, name: str, out: torch.Tensor, ctx: Context, ks: list[int]) -> torch.Tensor:
        return self.objective.pair_distortion(out, ctx[f"ref/{name}"][:, ks], ctx["clean"])

    def _references(self, x: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        """The clean outputs under every domain, once per batch, and the clean images (the masked distortion's);
        with ``eot``, also the outputs on the transformed clean images the gradient steps compare against."""
        refs = {f"ref/{n}": r for n, r in self.model.all_outputs(x, ctx["attrs"]).items()}
        if self.eot is not None:
            xt = self.eot(x)
            refs |= {f"ref_eot/{n}": r for n, r in self.model.all_outputs(xt, ctx["attrs"]).items()}
            refs["clean_eot"] = xt
        return {**refs, "clean": x}

    @torch.no_grad()
    def evaluate(self, z: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        refs = {n: ctx[f"ref/{n}"] for n in self.model.names}
        return {"distortion": self.objective.all_pairs(self.model.all_outputs(z, ctx["attrs"]), refs, ctx["clean"])}

    def score_and_grad(self, z: torch.Tensor, ctx: Context):
        return self.step_direction(z, ctx)

    def step_direction(self, z: torch.Tensor, ctx: Context, pool: bool = False):
        """(output, score, direction) of one step at ``z``. ``pool``: one direction for the whole batch (shape
        (1, C, H, W)), the combiners applied to each generator's gradient and loss averaged over the photos, i.e.
        to the batch-mean objective a universal perturbation ascends."""
        t, self._t = self._t, self._t + 1
        active = self._step_models(t)
        n = len(z)
        cols: dict[str, torch.Tensor] = {}
        grads, losses = [], []
        for name in active:
            ks = self._step_domains(name, t)
            zr = z.detach().repeat(len(ks), 1, 1, 1).requires_grad_(True)  # one leaf per domain's copy
            with torch.enable_grad():
                if self.eot is None:
                    d = self._distortion(name, self.model.outputs(name, zr, ctx["attrs"], ks), ctx, ks)  # (N, k)
                else:  # through the transformation (its differentiable surrogate), against its clean outputs
                    out = self.model.outputs(name, self.eot.through(zr), ctx["attrs"], ks)
                    d = self.objective.pair_distortion(out, ctx[f"ref_eot/{name}"][:, ks], ctx["clean_eot"])
                (g,) = torch.autograd.grad(d.sum(), zr)
            self.backward_calls += 1
            g = g.view(len(ks), n, *z.shape[1:]).transpose(0, 1)  # (N, k, C, H, W)
            loss = d.detach().mean(1)
            if pool:
                g, loss = g.mean(0, keepdim=True), loss.mean(0, keepdim=True)
            if self.domains == "mgda" and len(ks) > 1:
                g = combine(g, min_norm_weights_batched(g))
            else:
                g = g.mean(1)  # uniform: the gradient of the mean; single / iterative: the one domain
            grads.append(g)
            losses.append(loss)
            if len(ks) == len(self.model.domains(name)) and self.eot is None:
                cols[name] = d.detach()
        g = regularize(torch.stack(grads, 1), torch.stack(losses, 1), self.regularizer, self.reg_eps)
        if self.models == "mgda" and g.shape[1] > 1:
            direction = combine(g, min_norm_weights_batched(g))
        else:
            direction = g.mean(1)
        out = {"distortion": self._assemble(cols, z, ctx)}
        return out, self.objective.score(out, ctx), direction

    def _assemble(self, cols: dict[str, torch.Tensor], z: torch.Tensor, ctx: Context) -> torch.Tensor:
        """The (N, P) distortion at ``z``: the pairs this step computed, the others by a forward without autograd
        when the optimizer needs them (APGD's best point, the early exit), else NaN (never read)."""
        full = self._full_output_needed()
        parts = []
        for name in self.model.names:
            if name in cols:
                parts.append(cols[name])
                continue
            k = len(self.model.domains(name))
            if full:
                with torch.no_grad():
                    parts.append(self._distortion(name, self.model.outputs(name, z, ctx["attrs"]), ctx,
                                                  list(range(k))))
            else:
                parts.append(z.new_full((len(z), k), float("nan")))
        return torch.cat(parts, 1)

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        self._t = 0  # the iterative combiners cycle from the first domain / generator in every batch
        result = super().perturb(x, ctx.update(self._references(x, ctx)))
        result.clean = None  # x's distortion is 0 by definition; the first step's output may be partial
        return result

    def run(self, x: torch.Tensor, y: torch.Tensor, context: Context | None = None):
        self.backward_calls = 0
        return super().run(x, y, context)


def _objective(tau: float, strict: bool, masked: bool, scale: float, **budgets: float | str) -> dict:
    """The keyword arguments every base optimizer gets: budgets on [0, 1] and the Disruption objective."""
    return {**{k: _budget(v, scale, k) for k, v in budgets.items()}, "objective": Disruption(tau, strict, masked)}


@register_attack
class CDMAA(_Disrupting, IterativeAttack):
    def __init__(self, model: Translators, eps: float | str = 0.05, alpha: float | str = 0.01, steps: int = 10,
                 domains: str = "uniform", models: str = "mgda", regularizer: str = "penalty", single_domain: int = 0,
                 single_model: int = 0, reg_eps: float = 1e-8, tau: float = 0.05, strict: bool = False,
                 masked: bool = False, scale: float = 2.0, random_start: bool = True, eot: nn.Module | None = None,
                 **kwargs) -> None:
        IterativeAttack.__init__(self, model, steps=steps, random_start=random_start,
                                 **_objective(tau, strict, masked, scale, eps=eps, alpha=alpha), **kwargs)
        self._setup(domains, models, regularizer, single_domain, single_model, reg_eps, eot)


@register_attack
class CDMAAMomentum(_Disrupting, MIFGSM):
    def __init__(self, model: Translators, eps: float | str = 0.05, alpha: float | str = 0.01, steps: int = 10,
                 domains: str = "uniform", models: str = "mgda", regularizer: str = "penalty", single_domain: int = 0,
                 single_model: int = 0, reg_eps: float = 1e-8, tau: float = 0.05, strict: bool = False,
                 masked: bool = False, scale: float = 2.0, decay: float = 1.0, random_start: bool = True,
                 eot: nn.Module | None = None, **kwargs) -> None:
        MIFGSM.__init__(self, model, steps=steps, decay=decay, random_start=random_start,
                        **_objective(tau, strict, masked, scale, eps=eps, alpha=alpha), **kwargs)
        self._setup(domains, models, regularizer, single_domain, single_model, reg_eps, eot)


@register_attack
class CDMAAAPGD(_Disrupting, APGD):
    """APGD adapts its own step size (from 2 eps): no ``alpha``."""

    def __init__(self, model: Translators, eps: float | str = 0.05, steps: int = 10, domains: str = "uniform",
                 models: str = "mgda", regularizer: str = "penalty", single_domain: int = 0, single_model: int = 0,
                 reg_eps: float = 1e-8, tau: float = 0.05, strict: bool = False, masked: bool = False,
                 scale: float = 2.0, eot: nn.Module | None = None, **kwargs) -> None:
        APGD.__init__(self, model, steps=steps, **_objective(tau, strict, masked, scale, eps=eps), **kwargs)
        self._setup(domains, models, regularizer, single_domain, single_model, reg_eps, eot)


BASES = {"ifgsm": CDMAA, "mifgsm": CDMAAMomentum, "apgd": CDMAAAPGD}  # base optimizer -> CDMAA on it
