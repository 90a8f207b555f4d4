"""A small multi-label CelebA attribute classifier, the judge of whether a trained generator edits what it is asked.

Attack papers on StarGAN and AttGAN check their targets with an attribute classifier trained on real CelebA; this is
a small one of that kind, sized for the smoke runs: ``depth`` blocks of (conv 3x3, BatchNorm, ReLU, conv 3x3 stride
2, BatchNorm, ReLU), doubling the width each block, then a linear layer on the flattened map. The flattened map
(rather than global pooling) keeps where a feature lies: CelebA's attributes sit at fixed places of an aligned face,
and several look alike elsewhere (a mustache, bushy brows and a fringe are all dark bands).

With ``style`` set, one more logit says whether an image is in a second domain (U-GAT-IT's domain B, e.g. advdf's
"anime" stylization), so the same judge reads the attributes of stylized faces and tells a translation into the
domain from an untranslated face.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.generators.base import check_image_size, check_positive
from advdf.generators.registry import load_weights


class AttributeClassifier(nn.Module):
    """Images in [-1, 1] (N, 3, S, S) -> one logit per attribute, then the style logit if any:
    (N, len(attributes) + (style is not None)).

    Args:
        attributes: the CelebA attribute names of the logits, in order.
        image_size: side S of the square input, divisible by 2**depth.
        width: channels of the first block.
        depth: number of stride-2 blocks.
        dropout: before the linear layer.
        style: the name of the second domain whose logit comes last (None: no style logit).
    """

    name = "attribute_classifier"
    checkpoint_key = None

    def __init__(self, attributes: Sequence[str], image_size: int = 128, width: int = 32, depth: int = 4,
                 dropout: float = 0.0, style: str | None = None) -> None:
        check_positive(self.name, width=width, depth=depth)
        check_image_size(self.name, image_size, 2**depth)
        if isinstance(attributes, str) or not attributes or len(set(attributes)) != len(attributes):
            raise ConfigError(f"{self.name} needs a non-empty list of distinct attribute names, got {attributes!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"{self.name} dropout must lie in [0, 1), got {dropout}")
        super().__init__()
        self.attributes = tuple(attributes)
        self.style = style
        self.image_size = image_size
        layers: list[nn.Module] = []
        n_in = 3
        for i in range(depth):
            n_out = width * 2**i
            layers += [nn.Conv2d(n_in, n_out, 3, 1, 1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU(),
                       nn.Conv2d(n_out, n_out, 3, 2, 1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU()]
            n_in = n_out
        self.features = nn.Sequential(*layers)
        side = image_size // 2**depth
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_in * side * side,
                                                                               len(attributes) + (style is not None)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(f"{self.name} needs images (N, 3, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        return self.head(self.features(x))


def create_attribute_classifier(attributes: Sequence[str], image_size: int = 128, width: int = 32, depth: int = 4,
                                dropout: float = 0.0, style: str | None = None,
                                checkpoint_path: str | Path | None = None) -> AttributeClassifier:
    """An :class:`AttributeClassifier`, with the weights at ``checkpoint_path`` (safetensors, or a Lightning
    checkpoint whose module keeps it as ``classifier``) loaded strictly."""
    model = AttributeClassifier(attributes, image_size, width, depth, dropout, style)
    if checkpoint_path:
        load_weights(model, checkpoint_path, lightning_prefix="classifier.")
    return model
