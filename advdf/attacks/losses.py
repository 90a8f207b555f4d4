"""Attack objectives, written as quantities the attacker *maximizes*, one value per sample.

``y`` is the true label for untargeted attacks and the target label for targeted ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from advdf.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """CE of the true class (untargeted, ascend) or minus CE of the target class (targeted)."""
    ce = F.cross_entropy(logits.float(), y, reduction="none")
    return -ce if targeted else ce


def margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool, kappa: float = float("inf")) -> torch.Tensor:
    """Carlini–Wagner margin on logits, capped at ``kappa``.

    Targeted: Z_t - max_{j != t} Z_j (toward "real" this pushes Z_real above Z_fake, as in seed 001).
    Untargeted: max_{j != y} Z_j - Z_y.
    """
    logits = logits.float()
    own = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    gap = own - others if targeted else others - own
    return gap.clamp(max=kappa)


LOSSES: dict[str, LossFn] = {"ce": cross_entropy, "margin": margin}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ConfigError(f"unknown attack loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
