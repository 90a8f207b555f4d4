"""Precise batch-norm statistics for short training runs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]]) -> int:
    """Re-estimate the running statistics of every batch norm of ``model`` that is in training use, as the plain
    average over ``batches`` (argument tuples for ``model``) with the current weights ("precise BN").

    A short run moves the weights faster than the exponential running average (momentum 0.1) follows them, so the
    evaluation-mode statistics trail the model they normalize. Batch norms in eval mode (a frozen backbone) are left
    alone. Returns the number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    n = 0
    for args in batches:
        model(*args)
        n += 1
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return n
