"""A few optimizer steps on one loss, for tests that check a loss goes down on a tiny batch."""

from __future__ import annotations

from collections.abc import Callable

import torch


def descend(loss_fn: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    """Run ``steps`` of zero_grad / backward / step on ``loss_fn()``; returns the loss before each step."""
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
