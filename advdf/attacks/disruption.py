"""Disrupting image-translation generators (seed 003): what is attacked, and what the attack scores.

A protective perturbation succeeds when every generator, under every condition it offers, turns the protected photo
into a visibly wrong output: the distortion ``L = MSE(G(x_adv, c), G(x, c))`` (Ruiz et al. 2020), on the generators'
own [-1, 1] output scale, reaches a threshold ``tau``.

:class:`Translators` holds the generators under attack and speaks advdf's [0, 1] image convention (it maps to the
generators' [-1, 1] itself), so the shared attack core (budget, projection, box, checks) applies unchanged.
:class:`Disruption` is the objective: one distortion per (generator, domain) pair, the score is their mean, and a
sample succeeded when every pair reached ``tau``. Targets ``y`` are the images' source attributes, (N, A) in {0, 1}
over ``Translators.attributes``; each generator reads its own columns and builds its conditions from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from advdf.attacks.objectives import Context, Objective
from advdf.errors import ConfigError


class Translators(nn.Module):
    """The generators a protective perturbation is crafted against, on [0, 1] images.

    Args:
        generators: name -> generator (:class:`advdf.generators.Generator`: ``attributes``, ``domains``,
            ``conditions(attrs)`` and ``forward(x, c)`` on [-1, 1]).
        attributes: the attribute columns of the targets ``y`` the attack gets (default: every generator's
            attributes, in order of first appearance).
    """

    def __init__(self, generators: Mapping[str, nn.Module], attributes: Sequence[str] | None = None) -> None:
        super().__init__()
        if not generators:
            raise ConfigError("a disruption attack needs at least one generator")
        self.generators = nn.ModuleDict(dict(generators))
        names = list(dict.fromkeys(a for g in self.generators.values() for a in g.attributes))
        self.attributes = tuple(attributes) if attributes is not None else tuple(names)
        for name, g in self.generators.items():
            missing = [a for a in g.attributes if a not in self.attributes]
            if missing:
                raise ConfigError(f"generator {name!r} is conditioned on {missing}, not among the attack's "
                                  f"attributes {list(self.attributes)}")
        self._columns = {name: [self.attributes.index(a) for a in g.attributes] for name, g in self.generators.items()}

    @property
    def names(self) -> list[str]:
        return list(self.generators)

    def domains(self, name: str) -> tuple[str, ...]:
        return tuple(self.generators[name].domains)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (generator, domain) pair, generator-major: the columns of :class:`Disruption`'s distortion."""
        return [(n, d) for n in self.names for d in self.domains(n)]

    def conditions(self, name: str, y: torch.Tensor, domains: Sequence[int]) -> torch.Tensor | None:
        """The conditions of generator ``name`` for targets ``y`` (N, A) under ``domains``, domain-major (K*N, ...)
        like ``x.repeat(K, 1, 1, 1)``; None for a generator without a condition input (U-GAT-IT)."""
        g = self.generators[name]
        attrs = y[:, self._columns[name]].float()
        conds = [g.condition(attrs, k) for k in domains]
        return None if conds[0] is None else torch.cat(conds)

    def translate(self, name: str, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Generator ``name``'s output on [0, 1] images ``z`` under ``cond``, on its [-1, 1] scale."""
        return self.generators[name](z * 2 - 1, cond)

    def outputs(self, name: str, z: torch.Tensor, y: torch.Tensor, domains: Sequence[int] | None = None) \
            -> torch.Tensor:
        """Generator ``name``'s outputs (N, K, C, H, W) under ``domains`` (default: all) for targets ``y`` (N, A), at
        ``z``: (N, C, H, W) images, or the K copies already stacked domain-major (K * N, C, H, W), e.g. separate
        leaves for per-domain gradients. One forward of the stacked batch."""
        ks = list(range(len(self.domains(name)))) if domains is None else list(domains)
        n = len(y)
        if len(z) == n and len(ks) > 1:
            z = z.repeat(len(ks), 1, 1, 1)
        out = self.translate(name, z, self.conditions(name, y, ks))
        return out.view(len(ks), n, *out.shape[1:]).transpose(0, 1)

    @torch.no_grad()
    def all_outputs(self, z: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every generator's outputs under all its domains, without autograd: name -> (N, K, C, H, W)."""
        return {name: self.outputs(name, z, y) for name in self.names}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise ConfigError("Translators are attacked through a Disruption objective (advdf.attacks.CDMAA), "
                          "not called on images alone: each generator needs its conditions")


def distortion(out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample MSE between outputs ``out`` and references ``ref`` (N, ..., C, H, W), over C, H, W.

    ``x`` (the source images on the generators' [-1, 1] scale, broadcastable to ``ref``) restricts it to the pixels
    the generator edits, as CMUA-Watermark's face-masked variant: where ``sum_c |ref - x| > 0.5``; a sample
    whose generator edits nothing gets 0.
    """
    sq = (out - ref) ** 2
    if x is None:
        return sq.flatten(-3).mean(-1)
    mask = ((ref - x).abs().sum(-3, keepdim=True) > 0.5).to(sq.dtype)
    area = mask.flatten(-3).sum(-1) * sq.shape[-3]
    return (sq * mask).flatten(-3).sum(-1) / area.clamp_min(1)


class Disruption(Objective):
    """Seed 003's objective: the distortion of every (generator, domain) pair's output.

    Args:
        tau: a pair is disrupted when its distortion reaches ``tau`` (Ruiz et al.: 0.05).
        strict: ``L > tau`` (Ruiz et al.'s rule) instead of ``L >= tau`` (seed 003's).
        masked: measure inside the pixels the generator edits (CMUA-Watermark's face-masked distortion).

    The output of a point is ``{"distortion": (N, P)}`` over :meth:`Translators.pairs`; the score is the mean over
    the pairs; success is every pair disrupted. The context carries the attributes ``y`` and, per generator, the
    clean outputs (``ref/<name>``, (N, K, C, H, W)), computed once by the attack.
    """

    def __init__(self, tau: float = 0.05, strict: bool = False, masked: bool = False) -> None:
        if not tau > 0:
            raise ConfigError(f"tau must be positive, got {tau}")
        self.tau = float(tau)
        self.strict = bool(strict)
        self.masked = bool(masked)

    def __repr__(self) -> str:
        return f"Disruption(tau={self.tau}, strict={self.strict}, masked={self.masked})"

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        if y.ndim != 2:
            raise ConfigError(f"a disruption attack's targets are source attributes (N, A), got {tuple(y.shape)}")
        return Context(attrs=y)

    def pair_distortion(self, out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N, K) distortions of outputs ``out`` (N, K, C, H, W) against ``ref``; ``x``: clean [0, 1] images."""
        return distortion(out, ref, (x * 2 - 1).unsqueeze(1) if self.masked else None)

    def all_pairs(self, outputs: Mapping[str, torch.Tensor], refs: Mapping[str, torch.Tensor], x: torch.Tensor) \
            -> torch.Tensor:
        """(N, P) distortions over every pair (generator-major, as :meth:`Translators.pairs`) from
        :meth:`Translators.all_outputs` at a point and at the clean images ``x``."""
        return torch.cat([self.pair_distortion(outputs[n], refs[n], x) for n in outputs], 1)

    def disrupted(self, d: torch.Tensor) -> torch.Tensor:
        return d > self.tau if self.strict else d >= self.tau

    def score(self, output, ctx: Context) -> torch.Tensor:
        return output["distortion"].mean(1)

    def success(self, output, ctx: Context) -> torch.Tensor:
        return self.disrupted(output["distortion"]).all(1)

    def report(self, output) -> dict[str, torch.Tensor]:
        return {"distortion": output["distortion"]}
