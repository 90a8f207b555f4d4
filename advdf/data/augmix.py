"""AugMix views of a training image (Hendrycks et al., "AugMix", ICLR 2020).

AugMix trains on the clean image plus two augmented views and adds a Jensen-Shannon consistency term between
the three predictions. This module produces the two views; the loss (``jsd_consistency``, ``augmix_loss``) is in
:mod:`advdf.lit.losses`.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from advdf.errors import ConfigError


class AugMixViews:
    """Two independent AugMix views of a uint8 HWC image, as a float tensor (2, 3, H, W) in [0, 1].

    Each view mixes ``mixture_width`` chains of ``chain_depth`` random operations with Dirichlet(alpha) weights,
    then blends the mix with the image by a Beta(alpha, alpha) weight (torchvision's ``AugMix`` does both).
    The defaults are the original ImageNet setting; ``all_ops=False`` leaves out brightness, contrast, color and
    sharpness, which overlap the ImageNet-C corruptions.

    The JSD consistency loss that goes with these views is :func:`advdf.lit.losses.jsd_consistency`
    (and :func:`advdf.lit.losses.augmix_loss` for CE + JSD on a stacked clean/aug1/aug2 batch).

    Args:
        severity: strength of the base operations, 1..10.
        mixture_width: number of augmentation chains mixed per view (>= 1).
        chain_depth: operations per chain (>= 1), or -1 for a random depth in 1..3.
        alpha: Dirichlet/Beta concentration (> 0).
        all_ops: also use brightness, contrast, color and sharpness.
    """

    def __init__(self, severity: int = 1, mixture_width: int = 3, chain_depth: int = -1, alpha: float = 1.0,
                 all_ops: bool = False) -> None:
        if not 1 <= int(severity) <= 10:
            raise ConfigError(f"augmix severity must be in 1..10, got {severity}")
        if int(mixture_width) < 1:
            raise ConfigError(f"augmix mixture_width must be >= 1, got {mixture_width}")
        if int(chain_depth) != -1 and int(chain_depth) < 1:
            raise ConfigError(f"augmix chain_depth must be >= 1 or -1 (random 1..3), got {chain_depth}")
        if not float(alpha) > 0:
            raise ConfigError(f"augmix alpha must be > 0, got {alpha}")
        self.severity, self.mixture_width, self.chain_depth = int(severity), int(mixture_width), int(chain_depth)
        self.alpha, self.all_ops = float(alpha), bool(all_ops)
        self.augmix = v2.AugMix(severity=self.severity, mixture_width=self.mixture_width,
                                chain_depth=self.chain_depth, alpha=self.alpha, all_ops=self.all_ops)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ConfigError(f"AugMixViews expects a uint8 HxWx3 image, got {image.dtype} {image.shape}")
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        views = torch.stack([self.augmix(chw), self.augmix(chw)])
        return views.float().div_(255.0)

    def __repr__(self) -> str:
        return (f"AugMixViews(severity={self.severity}, mixture_width={self.mixture_width}, "
                f"chain_depth={self.chain_depth}, alpha={self.alpha}, all_ops={self.all_ops})")
