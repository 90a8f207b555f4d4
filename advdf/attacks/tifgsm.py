"""TI-FGSM — Dong et al., "Evading Defenses to Transferable Adversarial Examples by Translation-Invariant
Attacks", CVPR 2019.

Norm: L-inf. The gradient is convolved with a kernel ``W`` (depthwise, same padding, zero-padded) before the
momentum/sign step, which approximates the gradient over translated copies of the image. The original paper
uses a 15x15 Gaussian kernel (``norm.pdf`` over ``linspace(-3, 3, 15)``, outer product, normalized to sum 1),
eps = 16/255, 10 steps, alpha = eps / steps. ``decay=0`` is plain TI-FGSM, ``decay=1`` is MI-TI-FGSM.
Input diversity (the paper's DIM combination) is not implemented.

Args:
    model: detector on [0, 1] input.
    eps: budget (default 16/255).
    alpha: step size (default ``eps / steps``).
    steps: iterations (default 10).
    decay: momentum factor mu (default 0.0).
    kernel: ``"gaussian"`` or ``"uniform"`` (default ``"gaussian"``).
    kernel_size: odd kernel side (default 15); 1 gives the identity kernel, i.e. MI-FGSM / BIM.
    nsig: the Gaussian spans ``[-nsig, nsig]`` standard deviations across the kernel (default 3).
    **kwargs: ``nesterov``, ``targeted``, ``target``, ``loss`` (or an ``objective``), ``batch_size``, runtime
        options.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from advdf.attacks.mifgsm import MIFGSM
from advdf.attacks.registry import register_attack
from advdf.errors import ConfigError

KERNELS = ("gaussian", "uniform")


def translation_kernel(kind: str = "gaussian", size: int = 15, nsig: float = 3.0) -> torch.Tensor:
    """A (size, size) float64 kernel summing to 1."""
    if kind not in KERNELS:
        raise ConfigError(f"unknown TI kernel {kind!r}; choose one of {list(KERNELS)}")
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"kernel_size must be a positive odd integer, got {size}")
    if kind == "uniform":
        k2d = torch.ones(size, size, dtype=torch.float64)
    else:
        t = torch.linspace(-nsig, nsig, size, dtype=torch.float64)
        k1d = torch.exp(-0.5 * t**2) / math.sqrt(2 * math.pi)  # the standard normal pdf
        k2d = torch.outer(k1d, k1d)
    return k2d / k2d.sum()


@register_attack
class TIFGSM(MIFGSM):
    def __init__(self, model: nn.Module, eps: float | str = 16 / 255, alpha: float | str | None = None,
                 steps: int = 10, decay: float = 0.0, kernel: str = "gaussian", kernel_size: int = 15,
                 nsig: float = 3.0, **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, decay=decay, **kwargs)
        self.kernel_name = kernel
        self.kernel = translation_kernel(kernel, kernel_size, nsig)  # built once; cast per batch in _smooth

    def _smooth(self, grad: torch.Tensor) -> torch.Tensor:
        c = grad.shape[1]
        size = self.kernel.shape[-1]
        if self.kernel.device != grad.device or self.kernel.dtype != grad.dtype:
            self.kernel = self.kernel.to(device=grad.device, dtype=grad.dtype)  # cache the cast, like a buffer
        weight = self.kernel.expand(c, 1, size, size)  # one copy per channel: depthwise
        return F.conv2d(grad, weight, padding=size // 2, groups=c)
