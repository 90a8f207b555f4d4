"""Training of StarGAN (Choi et al. 2018) as its official solver trains it on CelebA (yunjey/stargan solver.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from advdf.generators import StarGAN, StarGANDiscriminator
from advdf.lit.gan_base import GANModule, gradient_penalty


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """StarGAN's CelebA classification loss: binary cross-entropy summed over the attributes, averaged over the
    batch (the official ``size_average=False`` sum divided by the batch size)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


class StarGANModule(GANModule):
    """StarGAN's losses: WGAN-GP, domain classification and cycle reconstruction.

    Discriminator: ``-D_src(x) + D_src(G(x, c')) + lambda_cls * L_cls(D_cls(x), c) + lambda_gp * GP``. Generator:
    ``-D_src(G(x, c')) + lambda_cls * L_cls(D_cls(G(x, c')), c') + lambda_rec * |x - G(G(x, c'), c)|``. The targets
    ``c'`` are the batch's labels in a random order (the official ``label_org[rand_idx]``), so hair colours stay
    one-hot (or all off) as they are in the data. The official schedule's linear learning-rate decay over its last
    100k of 200k iterations is left out: the smoke runs are far shorter.

    Args:
        generator, discriminator: a :class:`advdf.generators.StarGAN` and its discriminator (``c_dim`` equal to the
            generator's number of attributes).
        optimizer_g, optimizer_d, data_attributes, n_critic, grid_images: see :class:`advdf.lit.gan_base.GANModule`
            (official: Adam 1e-4, betas (0.5, 0.999), 5 critic steps).
        lambda_gp, lambda_cls, lambda_rec: the loss weights (official 10, 1, 10).
    """

    generator_type = StarGAN
    discriminator_type = StarGANDiscriminator

    def __init__(self, generator: StarGAN, discriminator: StarGANDiscriminator,
                 optimizer_g: Callable[..., torch.optim.Optimizer], optimizer_d: Callable[..., torch.optim.Optimizer],
                 data_attributes: Sequence[str], n_critic: int = 5, lambda_gp: float = 10.0,
                 lambda_cls: float = 1.0, lambda_rec: float = 10.0, grid_images: int = 8) -> None:
        super().__init__(generator, discriminator, optimizer_g, optimizer_d, data_attributes, n_critic, grid_images)
        self.check_head(discriminator.conv2.out_channels, "module.discriminator.c_dim")
        data_attributes = list(data_attributes)  # plain names in the checkpoint's hyperparameters, not a ListConfig
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.lambda_gp, self.lambda_cls, self.lambda_rec = float(lambda_gp), float(lambda_cls), float(lambda_rec)

    def discriminator_losses(self, x, attrs, targets):
        out_src, out_cls = self.discriminator(x)
        with torch.no_grad():
            fake = self.generator(x, targets)
        fake_src, _ = self.discriminator(fake)
        parts = {"real": -out_src.mean(), "fake": fake_src.mean(), "cls": classification_loss(out_cls, attrs),
                 "gp": gradient_penalty(lambda v: self.discriminator(v)[0], x, fake)}
        parts["loss"] = parts["real"] + parts["fake"] + self.lambda_cls * parts["cls"] + self.lambda_gp * parts["gp"]
        return parts

    def generator_losses(self, x, attrs, targets):
        fake = self.generator(x, targets)
        out_src, out_cls = self.discriminator(fake)
        parts = {"adv": -out_src.mean(), "cls": classification_loss(out_cls, targets),
                 "rec_l1": (x - self.generator(fake, attrs)).abs().mean()}
        parts["loss"] = parts["adv"] + self.lambda_cls * parts["cls"] + self.lambda_rec * parts["rec_l1"]
        return parts

    def reconstruct(self, x, attrs):
        """The cycle: G(G(x, c'), c) with c' the first domain's condition."""
        return self.generator(self.generator(x, self.generator.condition(attrs, 0)), attrs)
