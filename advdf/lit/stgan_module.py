"""Training of STGAN (Liu et al. 2019) as csmliu/STGAN trains it (train.py, ``label='diff'``, ``mode='wgan'``)."""

from __future__ import annotations

import torch

from advdf.generators import STGAN, STGANDiscriminator
from advdf.lit.attgan_module import AttGANModule


class STGANModule(AttGANModule):
    """STGAN's losses: AttGAN's (:class:`advdf.lit.AttGANModule`) with the difference vector as the input.

    The edit gets ``enc(b) - enc(a)`` and the reconstruction ``enc(a) - enc(a) = 0`` (the official ``_b - _a`` and
    ``_a - _a``); discriminator ``-(D(x) - D(x_b)) + lambda_gp * GP + lambda_3 * BCE(C(x), a)``, generator
    ``-D(x_b) + lambda_2 * BCE(C(x_b), b) + lambda_1 * |x_a - x|``, with the official weights 10, 1 (the
    discriminator's attribute loss), 10 and 100, Adam 2e-4 with beta1 0.5 and 5 critic steps. Same arguments as
    :class:`advdf.lit.AttGANModule`.
    """

    generator_type = STGAN
    discriminator_type = STGANDiscriminator

    def edit_condition(self, attrs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.generator.encode_attributes(targets) - self.generator.encode_attributes(attrs)

    def source_condition(self, attrs: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(attrs, dtype=torch.float)

    def translate_pair(self, x: torch.Tensor, attrs: torch.Tensor, targets: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        # STGAN's units see the condition from the deepest skip on, so the two decodes cannot share more than the
        # encoder; the encoder is cheap next to them.
        return (self.generator(x, self.edit_condition(attrs, targets)),
                self.generator(x, self.source_condition(attrs)))
