"""Universal perturbations against forensic autoencoders (seed 002): data-free over-firing, and its baseline.

``OverFire`` crafts one image-agnostic perturbation per latent zone without any data: the encoder sees the
perturbation alone, and Xi (from Xi_0 ~ U[-eps, eps]) descends L(Xi) = exp(kappa a_{1-c} / a_c) - a_c, so zone c
fires far above the other and every image it is added to reads as class c (Eqs. 2-3 of seed 002; plain gradient
steps, clipped to the eps-ball). An image of true zone t gets the perturbation of zone 1 - t (the flip).
``URN`` adds uniform random noise of the same strength: one seeded pattern for every image, like a universal
perturbation.

"The perturbation alone": the encoder's *normalized* input is Xi / std, i.e. the image equal to the normalization's
mean plus Xi (``carrier: mean``, advdf's reading: a perturbation on a neutral image), or normalize(Xi), the black
image plus Xi (``carrier: zero``). Budgets are on the ``pixel_scale`` scale (0-255 by default, as seed 002's IAP);
seed 002 gives no UAP budget, so the default eps 10 is the data-free UAP references' (fast-feature-fool, GD-UAP).

The universal perturbations are crafted once per attack object and input shape (``universal``) and reused for every
batch; their gradient calls are counted in ``craft_grad_calls``, not per image.

Args:
    model: a forensic autoencoder (:mod:`advdf.forensics`) or its :class:`~advdf.forensics.DetectorView`.
    eps: L-inf budget on the ``pixel_scale`` scale (default 10).
    alpha: step of the raw gradient on that scale (default 1.0); ``sign: true`` steps along its sign instead.
    steps: iterations per zone (default 280).
    kappa: the exponent's weight, > 0 (seed 002: "> 1", value not given; default 2).
    carrier: ``mean`` or ``zero`` (above).
    seed: seeds Xi_0.
    **kwargs: ``batch_size``, runtime options (see :class:`advdf.attacks.base.Attack`).
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from advdf.attacks.base import Attack, Perturbed
from advdf.attacks.iap import pixel_budget
from advdf.attacks.objectives import Context, Objective
from advdf.attacks.registry import register_attack
from advdf.attacks.zones import ZoneActivation
from advdf.errors import ConfigError
from advdf.forensics.base import DetectorView, ZoneAutoencoder, zone_of_label

CARRIERS = ("mean", "zero")


def _has_zones(model: nn.Module) -> bool:
    """The model's output is a zone autoencoder's result dict (a DetectorView's is plain logits)."""
    return isinstance(model, ZoneAutoencoder)


def zone_model(model: nn.Module, what: str) -> ZoneAutoencoder:
    """The zone autoencoder behind ``model``; ConfigError for a model without latent zones."""
    if isinstance(model, DetectorView):
        model = model.model
    if not isinstance(model, ZoneAutoencoder):
        raise ConfigError(f"{what} needs a model with latent zones (advdf.forensics: classnseg, forensic_transfer); "
                          f"{type(model).__name__} has none")
    return model


MAX_EXPONENT = 50.0  # exp(50) ~ 5e21: beyond it the exponential continues along its tangent (see overfire_loss)
MIN_ENERGY = 1e-6  # floor of a_c in the ratio: a silent zone (every activation 0 after the ReLU) divides by it


def overfire_loss(energies: torch.Tensor, zone: torch.Tensor, kappa: float) -> torch.Tensor:
    """Seed 002's Eq. 3 per sample: exp(kappa a_{1-c} / a_c) - a_c, for each row's zone ``c`` (N,).

    Past :data:`MAX_EXPONENT` the exponential continues along its tangent line, so the loss stays finite *and* keeps
    the gradient that pushes a_{1-c} down. Capping the exponent instead (a flat loss) gives a zero gradient exactly
    where it is needed: when zone c is silent at Xi_0 (a_c = 0 after the encoder's ReLU), its perturbation would
    never move.
    """
    rows = torch.arange(len(energies), device=energies.device)
    a_c, a_other = energies[rows, zone], energies[rows, 1 - zone]
    exponent = kappa * a_other / a_c.clamp_min(MIN_ENERGY)
    capped = exponent.clamp_max(MAX_EXPONENT)
    return torch.exp(capped) * (1 + exponent - capped) - a_c


class _Universal(Attack):
    """One perturbation per zone, added to each image by its true label; subclasses make :meth:`craft`."""

    def __init__(self, model: nn.Module, eps: float | str, pixel_scale: float = 255.0,
                 objective: Objective | None = None, **kwargs) -> None:
        if objective is None and _has_zones(model):
            objective = ZoneActivation()  # else the base's default: classification on the logits
        super().__init__(model, pixel_budget(eps, pixel_scale, "eps"), objective=objective, **kwargs)
        self.pixel_scale = float(pixel_scale)
        self._universal: dict[tuple, torch.Tensor] = {}
        self.craft_grad_calls = 0

    @abc.abstractmethod
    def craft(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """(2, C, H, W) perturbations in [-eps, eps] on [0, 1] images: index c makes images read as zone c."""

    def universal(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """The crafted perturbations for images of ``shape`` (C, H, W), crafted on first use."""
        key = (tuple(shape), str(device))
        if key not in self._universal:
            self._universal[key] = self.craft(tuple(shape), torch.device(device)).detach()
        return self._universal[key]

    def apply(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """``x`` plus, per image, the perturbation of the zone opposite its label ``y`` (advdf labels), in the box;
        the way to carry the perturbations to any other model."""
        xi = self.universal(x.shape[1:], x.device)
        return (x + xi[1 - zone_of_label(y)]).clamp(0.0, 1.0)

    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        x_adv = self.apply(x, ctx["target"] if "target" in ctx else None)
        return Perturbed(x_adv, self.evaluate(x_adv, ctx), 0)


@register_attack
class OverFire(_Universal):
    needs_zones = True
    deterministic = True  # Xi_0 comes from the attack's own seed
    cache_version = 2  # 2: sign steps of alpha on the pixel scale (were alpha on [0, 1]); the loss's tangent past the cap

    def __init__(self, model: nn.Module, eps: float | str = 10.0, alpha: float = 1.0, steps: int = 280,
                 kappa: float = 2.0, carrier: str = "mean", sign: bool = False, seed: int = 0,
                 pixel_scale: float = 255.0, **kwargs) -> None:
        zone_model(model, "uap_overfire")
        super().__init__(model, eps, pixel_scale, **kwargs)
        if not (math.isfinite(kappa) and kappa > 0):
            raise ConfigError(f"kappa must be a positive number (seed 002: > 1), got {kappa}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ConfigError(f"alpha must be a positive number, got {alpha}")
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if carrier not in CARRIERS:
            raise ConfigError(f"carrier must be one of {CARRIERS}, got {carrier!r}")
        self.alpha, self.steps, self.kappa = float(alpha), int(steps), float(kappa)
        self.carrier, self.sign, self.seed = carrier, bool(sign), int(seed)

    def encoder_input(self, xi: torch.Tensor, net: ZoneAutoencoder) -> torch.Tensor:
        """The normalized encoder input that is ``xi`` alone (see ``carrier``)."""
        return xi / net.std if self.carrier == "mean" else net.normalize(xi)

    def craft(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        net = zone_model(self.model, "uap_overfire")
        gen = torch.Generator().manual_seed(self.seed)
        xi = (torch.rand((2, *shape), generator=gen) * 2 - 1).mul_(self.eps).to(device)  # one start per zone
        zones = torch.arange(2, device=device)
        # a step of alpha on the pixel_scale scale: alpha / pixel_scale on [0, 1] images along the sign; along the
        # raw gradient (whose [0, 1] value is pixel_scale times the pixel_scale one) alpha / pixel_scale**2
        rate = self.alpha / self.pixel_scale if self.sign else self.alpha / self.pixel_scale**2
        for _ in range(self.steps):  # both zones in one batch: row c is zone c's perturbation
            xi.requires_grad_(True)
            energies = net.energies(net.encode(self.encoder_input(xi, net)))
            (grad,) = torch.autograd.grad(overfire_loss(energies, zones, self.kappa).sum(), xi)
            step = grad.sign() if self.sign else grad
            xi = (xi.detach() - rate * step).clamp_(-self.eps, self.eps)
        self.craft_grad_calls += self.steps
        return xi


@register_attack
class URN(_Universal):
    """Uniform random noise in [-eps, eps], the UAP's baseline of the same strength: one seeded pattern for every
    image (both zones' slots hold the same draw). Any model: the noise does not look at it."""

    def __init__(self, model: nn.Module, eps: float | str = 10.0, seed: int = 0, pixel_scale: float = 255.0,
                 **kwargs) -> None:
        super().__init__(model, eps, pixel_scale, **kwargs)
        self.seed = int(seed)

    def craft(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        noise = (torch.rand(shape, generator=gen) * 2 - 1).mul_(self.eps)
        return noise.expand(2, *shape).clone().to(device)

    def apply(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` plus the noise pattern, in the box (the labels do not matter)."""
        return (x + self.universal(x.shape[1:], x.device)[0]).clamp(0.0, 1.0)
