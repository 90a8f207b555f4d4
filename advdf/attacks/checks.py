"""The check every adversarial example passes before it enters a cache or a table."""

from __future__ import annotations

import torch

from advdf.errors import AdversarialCheckError

TOLERANCE = 1e-5  # float32 rounding of x ± eps


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample L-inf, L2 and L0 (fraction of changed pixel values) of ``x_adv - x``."""
    delta = (x_adv - x).flatten(1)
    return {
        "linf": delta.abs().amax(1),
        "l2": delta.norm(dim=1),
        "l0": (delta.abs() > 1e-8).float().mean(1),
    }


def check_adversarial(x_adv: torch.Tensor, x: torch.Tensor, eps: float | None, norm: str = "linf") -> None:
    """Raise :class:`AdversarialCheckError` unless ``x_adv`` is finite, in [0, 1] and inside its eps-ball.

    ``eps=None`` (a minimum-norm attack without a cap) checks finiteness and the box only.
    """
    if x_adv.shape != x.shape:
        raise AdversarialCheckError(f"adversarial batch has shape {tuple(x_adv.shape)}, clean {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise AdversarialCheckError("adversarial examples contain NaN or inf")
    lo, hi = x_adv.min().item(), x_adv.max().item()
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        raise AdversarialCheckError(f"adversarial examples leave [0, 1]: range [{lo:.6f}, {hi:.6f}]")
    if eps is None:
        return
    if norm == "linf":
        worst = (x_adv - x).abs().amax().item()
        if worst > eps + TOLERANCE:
            raise AdversarialCheckError(f"perturbation L-inf {worst:.6f} exceeds eps {eps:.6f}")
    elif norm == "l2":
        worst = (x_adv - x).flatten(1).norm(dim=1).amax().item()
        if worst > eps * (1 + TOLERANCE) + TOLERANCE:
            raise AdversarialCheckError(f"perturbation L2 {worst:.6f} exceeds eps {eps:.6f}")
    else:
        raise AdversarialCheckError(f"unknown perturbation norm {norm!r} (linf or l2)")
