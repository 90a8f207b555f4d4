"""Training of U-GAT-IT (Kim et al. 2020) as its official code trains it (znxlwm/UGATIT-pytorch UGATIT.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advdf.errors import ConfigError
from advdf.generators import UGATIT, UGATITDiscriminator
from advdf.lit.gan_base import GANModule


def _lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN's least-squares loss toward 1 (real) or 0 (fake)."""
    return F.mse_loss(logits, torch.ones_like(logits) if real else torch.zeros_like(logits))


class UGATITModule(GANModule):
    """U-GAT-IT's unpaired training of A -> B (``generator``) and B -> A (``generator_ba``), each domain judged by a
    global and a local discriminator with CAM heads.

    Per domain, the discriminators take LSGAN losses on their patch and CAM logits; each generator takes
    ``adv_weight`` (LSGAN, four discriminator outputs) + ``cycle_weight`` * |x -> other -> x - x| +
    ``identity_weight`` * |G(x of its own output domain) - x| + ``cam_weight`` * BCE of its CAM logits (1 for
    images of the other domain, 0 for its own); rho is clipped to [0, 1] after each generator step. One
    discriminator step per generator step (``n_critic`` 1). Domain B is ``domain_b`` applied to other images of the
    batch (the batch rolled by one), so no face is paired with its own stylization.

    ``discriminator`` (global) and ``discriminator_local`` judge domain B, the output domain of the exported
    generator; ``discriminator_a`` and ``discriminator_local_a`` judge domain A (the official disGB, disLB, disGA
    and disLA).

    Args:
        generator, generator_ba: two :class:`advdf.generators.UGATIT` of the same shape (built separately, so their
            initial weights differ).
        discriminator, discriminator_local, discriminator_a, discriminator_local_a: the four
            :class:`advdf.generators.UGATITDiscriminator`.
        domain_b: images in [-1, 1] -> their domain-B version (:class:`advdf.data.stylize.AnimeStyle`).
        optimizer_g, optimizer_d, data_attributes, grid_images: see :class:`advdf.lit.gan_base.GANModule`
            (official: Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4).
        n_critic: discriminator steps per generator step (official 1).
        adv_weight, cycle_weight, identity_weight, cam_weight: the loss weights (official 1, 10, 10, 1000).
    """

    def __init__(self, generator: UGATIT, generator_ba: UGATIT, discriminator: UGATITDiscriminator,
                 discriminator_local: UGATITDiscriminator, discriminator_a: UGATITDiscriminator,
                 discriminator_local_a: UGATITDiscriminator, domain_b: Callable[[torch.Tensor], torch.Tensor],
                 optimizer_g: Callable[..., torch.optim.Optimizer], optimizer_d: Callable[..., torch.optim.Optimizer],
                 data_attributes: Sequence[str] = (), n_critic: int = 1, adv_weight: float = 1.0,
                 cycle_weight: float = 10.0, identity_weight: float = 10.0, cam_weight: float = 1000.0,
                 grid_images: int = 8) -> None:
        if not isinstance(generator, UGATIT) or not isinstance(generator_ba, UGATIT):
            raise ConfigError(f"module=ugatit trains generator=ugatit, got {type(generator).__name__}")
        discriminators = (discriminator, discriminator_local, discriminator_a, discriminator_local_a)
        if not all(isinstance(d, UGATITDiscriminator) for d in discriminators):
            raise ConfigError("module=ugatit needs four U-GAT-IT discriminators (global and local, per domain)")
        if generator is generator_ba or len({id(d) for d in discriminators}) < 4:
            raise ConfigError("module=ugatit needs separately built networks for each direction and domain")
        super().__init__(generator, discriminator, optimizer_g, optimizer_d, data_attributes, n_critic, grid_images)
        data_attributes = list(data_attributes)  # plain names in the checkpoint's hyperparameters, not a ListConfig
        self.save_hyperparameters(ignore=["generator", "generator_ba", "discriminator", "discriminator_local",
                                          "discriminator_a", "discriminator_local_a", "domain_b", "optimizer_g",
                                          "optimizer_d"])
        self.generator_ba = generator_ba
        self.discriminator_local = discriminator_local
        self.discriminator_a = discriminator_a
        self.discriminator_local_a = discriminator_local_a
        self.domain_b = domain_b
        self.adv_weight, self.cycle_weight = float(adv_weight), float(cycle_weight)
        self.identity_weight, self.cam_weight = float(identity_weight), float(cam_weight)

    def generator_modules(self) -> list[nn.Module]:
        return [self.generator, self.generator_ba]

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.discriminator, self.discriminator_local, self.discriminator_a, self.discriminator_local_a]

    def sample_targets(self, attrs: torch.Tensor) -> torch.Tensor:
        return attrs  # unconditional

    def _domains(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real A, real B): the batch, and the domain-B version of the batch rolled by one image."""
        return x, self.domain_b(x.roll(1, dims=0))

    def _judged(self, images: torch.Tensor, domain: str) -> list[torch.Tensor]:
        """Patch and CAM logits of the global and local discriminators of ``domain`` ("a" or "b")."""
        pair = (self.discriminator, self.discriminator_local) if domain == "b" else \
            (self.discriminator_a, self.discriminator_local_a)
        out = []
        for d in pair:
            logits, cam_logits, _ = d(images)
            out += [logits, cam_logits]
        return out

    def discriminator_losses(self, x, attrs, targets):
        real_a, real_b = self._domains(x)
        with torch.no_grad():
            fake_b = self.generator.forward_full(real_a)[0]
            fake_a = self.generator_ba.forward_full(real_b)[0]
        parts = {}
        for domain, real, fake in (("a", real_a, fake_a), ("b", real_b, fake_b)):
            parts[f"adv_{domain}"] = sum(_lsgan(r, True) + _lsgan(f, False) for r, f in
                                         zip(self._judged(real, domain), self._judged(fake, domain), strict=True))
        parts["loss"] = self.adv_weight * (parts["adv_a"] + parts["adv_b"])
        return parts

    def generator_losses(self, x, attrs, targets):
        real_a, real_b = self._domains(x)
        fake_b, fake_b_cam, _ = self.generator.forward_full(real_a)
        fake_a, fake_a_cam, _ = self.generator_ba.forward_full(real_b)
        back_a = self.generator_ba.forward_full(fake_b)[0]
        back_b = self.generator.forward_full(fake_a)[0]
        same_a, same_a_cam, _ = self.generator_ba.forward_full(real_a)
        same_b, same_b_cam, _ = self.generator.forward_full(real_b)
        parts = {
            "adv": sum(_lsgan(v, True) for v in self._judged(fake_a, "a") + self._judged(fake_b, "b")),
            "cycle_l1": (back_a - real_a).abs().mean() + (back_b - real_b).abs().mean(),
            "identity_l1": (same_a - real_a).abs().mean() + (same_b - real_b).abs().mean(),
            "cam": (F.binary_cross_entropy_with_logits(fake_a_cam, torch.ones_like(fake_a_cam))
                    + F.binary_cross_entropy_with_logits(same_a_cam, torch.zeros_like(same_a_cam))
                    + F.binary_cross_entropy_with_logits(fake_b_cam, torch.ones_like(fake_b_cam))
                    + F.binary_cross_entropy_with_logits(same_b_cam, torch.zeros_like(same_b_cam))),
        }
        parts["loss"] = (self.adv_weight * parts["adv"] + self.cycle_weight * parts["cycle_l1"]
                         + self.identity_weight * parts["identity_l1"] + self.cam_weight * parts["cam"])
        return parts

    def after_generator_step(self) -> None:
        self.generator.clip_rho_()
        self.generator_ba.clip_rho_()

    def reconstruct(self, x, attrs):
        """The cycle A -> B -> A."""
        return self.generator_ba(self.generator(x))

    def translations(self, x, attrs):
        return [self.generator(x)]
