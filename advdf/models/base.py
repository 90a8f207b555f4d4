"""The detector interface every attack, defense and LightningModule relies on.

A :class:`Detector` takes images in [0, 1] and normalizes them inside itself, so attacks and defenses
never see the normalization. It returns logits of shape (N, 2): index 0 = real, 1 = fake.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advdf.errors import ConfigError

REAL, FAKE = 0, 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Detector(nn.Module):
    """A backbone with its input normalization and a two-logit output.

    Args:
        backbone: module mapping normalized images to logits; ``forward_features`` and ``forward_head``
            are used when the backbone has them (timm models do), for XAI and feature-based defenses.
        input_size: side of the square input the detector expects.
        mean: per-channel mean subtracted inside :meth:`forward`.
        std: per-channel std divided inside :meth:`forward`.
        single_logit: the backbone emits one logit z (fake score); it is exposed as [-z, z].

    Attributes:
        objective: how the detector is meant to be trained (``"ce"``; ``"triplet"`` for detectors defined by a
            triplet-trained embedding, e.g. EfficientNetB4ST); :class:`advdf.lit.DetectorModule` reads it when its
            own ``objective`` is ``auto``.
    """

    objective: str = "ce"

    def __init__(
        self,
        backbone: nn.Module,
        input_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        single_logit: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_size = int(input_size)
        self.single_logit = single_logit
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map of the backbone for input ``x`` in [0, 1]."""
        return self.backbone.forward_features(self.normalize(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self._two_logits(self.backbone.forward_head(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._two_logits(self.backbone(self.normalize(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding the classifier reads (timm's ``forward_head(..., pre_logits=True)``)."""
        head = getattr(self.backbone, "forward_head", None)
        if head is None or not hasattr(self.backbone, "get_classifier"):
            raise ConfigError(f"{type(self.backbone).__name__} exposes no embedding (needs timm's forward_head "
                              "with pre_logits and get_classifier)")
        return head(self.backbone.forward_features(self.normalize(x)), pre_logits=True)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits from an :meth:`embed` output: ``classify(embed(x)) == forward(x)``."""
        return self._two_logits(self.backbone.get_classifier()(embedding))

    def _two_logits(self, z: torch.Tensor) -> torch.Tensor:
        if not self.single_logit:
            return z
        z = z.reshape(-1, 1)
        return torch.cat([-z, z], dim=1)
