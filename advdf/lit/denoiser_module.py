"""LightningModule that trains a denoiser in front of a frozen detector (HGD's guided losses, and pixel loss)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from advdf.errors import ConfigError

GUIDANCE = ("logits", "features", "label", "pixel")


class DenoiserModule(pl.LightningModule):
    """Train ``denoiser`` so that ``detector(denoiser(x_adv))`` behaves like ``detector(x_clean)``.

    Batches are dicts with ``image`` (clean, [0, 1]), ``adv`` (its adversarial counterpart) and ``label``.
    The detector is frozen (no gradients to its weights, always in eval mode); the loss, by ``guidance``:

    - ``logits`` (LGD, HGD's default and seed 000's choice): L1 between the detector's logits on the denoised
      adversarial image and on the clean image;
    - ``features`` (FGD): the same on the detector's last feature map (``forward_features``);
    - ``label`` (CGD): cross-entropy of the detector on the denoised image with the true labels;
    - ``pixel``: L1 between the denoised adversarial image and the clean image (the unguided baseline).

    Args:
        denoiser: images in [0, 1] -> images in [0, 1] (e.g. :class:`advdf.denoisers.DUNet`).
        detector: the detector the denoiser protects.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``); only the denoiser's parameters are passed.
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        guidance: one of :data:`GUIDANCE`.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        detector: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        guidance: str = "logits",
    ) -> None:
        super().__init__()
        if guidance not in GUIDANCE:
            raise ConfigError(f"denoiser guidance={guidance!r} is unknown; choose one of {GUIDANCE}")
        self.save_hyperparameters(ignore=["denoiser", "detector", "optimizer", "scheduler"])
        self.denoiser = denoiser
        self.detector = detector.requires_grad_(False).eval()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.guidance = guidance

    def train(self, mode: bool = True) -> DenoiserModule:
        super().train(mode)
        self.detector.eval()  # frozen: batch-norm statistics and dropout stay as trained
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x)

    def guided_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The guidance loss and the detector's logits on the denoised adversarial images."""
        clean, adv, label = batch["image"], batch["adv"], batch["label"]
        denoised = self.denoiser(adv)
        if self.guidance == "features":
            with torch.no_grad():
                target = self.detector.forward_features(clean)
            features = self.detector.forward_features(denoised)
            return F.l1_loss(features, target), self.detector.forward_head(features)
        logits = self.detector(denoised)
        if self.guidance == "logits":
            with torch.no_grad():
                target = self.detector(clean)
            return F.l1_loss(logits, target), logits
        if self.guidance == "label":
            return F.cross_entropy(logits, label), logits
        return F.l1_loss(denoised, clean), logits

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        loss, logits = self.guided_loss(batch)
        accuracy = (logits.argmax(1) == batch["label"]).float().mean()
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc_denoised_adv", accuracy, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.denoiser.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
