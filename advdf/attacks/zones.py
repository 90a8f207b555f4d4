"""Objectives on forensic autoencoders (:mod:`advdf.forensics`): their latent zones and their segmentation.

The model output is the autoencoder's result dict (``energies``, ``logits``, ``seg``, ``recon``). Levels follow the
zones' convention of seed 002 (0 = fake, 1 = real); targets ``y`` are advdf labels (0 real, 1 fake).
"""

from __future__ import annotations

import torch

from advdf.attacks.objectives import Context, Objective
from advdf.errors import ConfigError
from advdf.forensics.base import activation_loss, label_of_zone, segmentation_loss, zone_of_label
from advdf.metrics import iou
from advdf.models.base import FAKE


def _require(output, key: str, what: str) -> torch.Tensor:
    if not isinstance(output, dict) or key not in output:
        raise ConfigError(f"{what} needs a forensic autoencoder's output with {key!r} (advdf.forensics); got "
                          f"{type(output).__name__}{f' with {sorted(output)}' if isinstance(output, dict) else ''}")
    return output[key]


class ZoneActivation(Objective):
    """Seed 002's IAP-cls objective: drive the zone energies to the level ``l_adv`` (minimize L_act(x, l_adv)).

    Args:
        level: ``None``: the opposite of each sample's true level (l_adv = 1 - l, the untargeted flip); a float in
            [0, 1]: that level for every sample.

    Success: the predicted label differs from the true one.
    """

    def __init__(self, level: float | None = None) -> None:
        if level is not None and not 0.0 <= float(level) <= 1.0:
            raise ConfigError(f"the zone level must be in [0, 1] (0 fake, 1 real), got {level}")
        self.level = level

    def __repr__(self) -> str:
        return f"ZoneActivation(level={self.level})"

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        true_level = zone_of_label(y).float()  # the real zone is 1: a real image's level is 1
        level = 1 - true_level if self.level is None else torch.full_like(true_level, float(self.level))
        return Context(target=y, level=level)

    def score(self, output, ctx: Context) -> torch.Tensor:
        return -activation_loss(_require(output, "energies", "ZoneActivation"), ctx["level"])

    def success(self, output, ctx: Context) -> torch.Tensor:
        return label_of_zone(_require(output, "energies", "ZoneActivation").argmax(1)) != ctx["target"]

    def report(self, output) -> dict[str, torch.Tensor]:
        return {k: output[k] for k in ("logits", "energies", "seg") if k in output}


class ZoneSegmentation(ZoneActivation):
    """Seed 002's IAP-seg objective: L_act(x, ``level``) + ``weight`` * L_seg(x, m_adv), minimized, on fake images.

    The adversarial masks ``adv_mask`` (N, 1, H, W) travel in the context (``Attack.run(x, y, Context(adv_mask=..))``,
    e.g. :func:`advdf.forensics.random_triangle_masks`); ``mask`` (the true masks), when given, lets success compare
    the two: a sample succeeded when its predicted mask is closer (IoU) to the adversarial mask than to its own.
    """

    def __init__(self, level: float = 0.45, weight: float = 1.8) -> None:
        super().__init__(level)
        if weight < 0:
            raise ConfigError(f"the segmentation weight must be non-negative, got {weight}")
        self.weight = float(weight)

    def __repr__(self) -> str:
        return f"ZoneSegmentation(level={self.level}, weight={self.weight})"

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        if (y != FAKE).any():
            raise ConfigError(f"the segmentation attack (iap_seg) attacks fake images only; got "
                              f"{int((y != FAKE).sum())} real image(s) in the batch")
        return super().bind(x, y)

    @staticmethod
    def _adv_mask(ctx: Context) -> torch.Tensor:
        if "adv_mask" not in ctx:
            raise ConfigError("ZoneSegmentation needs adversarial masks: pass Context(adv_mask=...) to Attack.run")
        return ctx["adv_mask"]

    def score(self, output, ctx: Context) -> torch.Tensor:
        seg = _require(output, "seg", "ZoneSegmentation")
        return super().score(output, ctx) - self.weight * segmentation_loss(seg, self._adv_mask(ctx))

    def success(self, output, ctx: Context) -> torch.Tensor:
        pred = (_require(output, "seg", "ZoneSegmentation")[:, 1:] > 0.5).float()
        toward = iou(pred, self._adv_mask(ctx))
        if "mask" not in ctx:
            return toward > 0.5
        return toward > iou(pred, ctx["mask"])
