"""Training of AttGAN (He et al. 2019) as elvisyjlin/AttGAN-PyTorch trains it (attgan.py ``trainG`` / ``trainD``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advdf.generators import AttGAN, AttGANDiscriminator
from advdf.lit.gan_base import GANModule, gradient_penalty


class AttGANModule(GANModule):
    """AttGAN's losses: WGAN-GP with an attribute classifier on the discriminator, reconstruction and generator
    attribute classification.

    With ``a`` the source and ``b`` the target attributes in {0, 1} and ``enc(v) = (2 v - 1) * thres_int`` the
    generator's input encoding (:meth:`advdf.generators.AttGAN.encode_attributes`): discriminator
    ``-(D(x) - D(G(x, enc(b)))) + lambda_gp * GP + lambda_3 * BCE(C(x), a)``; generator ``-D(G(x, enc(b))) +
    lambda_2 * BCE(C(G(x, enc(b))), b) + lambda_1 * |G(x, enc(a)) - x|``. The targets are the batch's attributes in
    a random order (the official ``att_a[randperm]``, ``b_distribution='none'``). One encoding of ``x`` serves both
    decodes of the generator step, as in the official code.

    Args:
        generator, discriminator: a :class:`advdf.generators.AttGAN` (or a model with its interface) and its
            discriminator, whose attribute head has one logit per generator attribute.
        optimizer_g, optimizer_d, data_attributes, n_critic, grid_images: see :class:`advdf.lit.gan_base.GANModule`
            (official: Adam 2e-4, betas (0.5, 0.999), 5 critic steps).
        lambda_1: reconstruction weight (official 100).
        lambda_2: generator classification weight (official 10).
        lambda_3: discriminator classification weight (official 1).
        lambda_gp: gradient-penalty weight (official 10).
    """

    generator_type: type = AttGAN
    discriminator_type: type = AttGANDiscriminator

    def __init__(self, generator: nn.Module, discriminator: nn.Module,
                 optimizer_g: Callable[..., torch.optim.Optimizer], optimizer_d: Callable[..., torch.optim.Optimizer],
                 data_attributes: Sequence[str], n_critic: int = 5, lambda_1: float = 100.0,
                 lambda_2: float = 10.0, lambda_3: float = 1.0, lambda_gp: float = 10.0,
                 grid_images: int = 8) -> None:
        super().__init__(generator, discriminator, optimizer_g, optimizer_d, data_attributes, n_critic, grid_images)
        head = discriminator.fc_cls if hasattr(discriminator, "fc_cls") else discriminator.fc_att
        self.check_head([m for m in head.modules() if isinstance(m, nn.Linear)][-1].out_features,
                        "module.discriminator.n_attrs")
        data_attributes = list(data_attributes)  # plain names in the checkpoint's hyperparameters, not a ListConfig
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.lambda_1, self.lambda_2 = float(lambda_1), float(lambda_2)
        self.lambda_3, self.lambda_gp = float(lambda_3), float(lambda_gp)

    # --- the conditions the two decodes get ----------------------------------------------------------------
    def edit_condition(self, attrs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The generator's input for translating images with ``attrs`` to ``targets``: ``enc(targets)``."""
        return self.generator.encode_attributes(targets)

    def source_condition(self, attrs: torch.Tensor) -> torch.Tensor:
        """The generator's input that asks for the image itself back: ``enc(attrs)``."""
        return self.generator.encode_attributes(attrs)

    def translate_pair(self, x: torch.Tensor, attrs: torch.Tensor, targets: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited, reconstructed) images, from one encoding of ``x``."""
        zs = self.generator.encode(x)
        return (self.generator.decode(zs, self.edit_condition(attrs, targets)),
                self.generator.decode(zs, self.source_condition(attrs)))

    # --- the losses ----------------------------------------------------------------------------------------
    def discriminator_losses(self, x, attrs, targets):
        with torch.no_grad():
            fake = self.generator(x, self.edit_condition(attrs, targets))
        real_adv, real_cls = self.discriminator(x)
        fake_adv, _ = self.discriminator(fake)
        parts = {"wd": real_adv.mean() - fake_adv.mean(),
                 "gp": gradient_penalty(lambda v: self.discriminator(v)[0], x, fake),
                 "cls": F.binary_cross_entropy_with_logits(real_cls, attrs)}
        parts["loss"] = -parts["wd"] + self.lambda_gp * parts["gp"] + self.lambda_3 * parts["cls"]
        return parts

    def generator_losses(self, x, attrs, targets):
        fake, recon = self.translate_pair(x, attrs, targets)
        fake_adv, fake_cls = self.discriminator(fake)
        parts = {"adv": -fake_adv.mean(), "cls": F.binary_cross_entropy_with_logits(fake_cls, targets),
                 "rec_l1": (recon - x).abs().mean()}
        parts["loss"] = parts["adv"] + self.lambda_2 * parts["cls"] + self.lambda_1 * parts["rec_l1"]
        return parts

    def reconstruct(self, x, attrs):
        return self.generator(x, self.source_condition(attrs))
