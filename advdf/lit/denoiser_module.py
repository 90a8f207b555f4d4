"""LightningModule that trains a denoiser in front of a frozen detector (HGD's guided losses, and pixel loss)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from advdf.errors import ConfigError

GUIDANCE = ("logits", "features", "label", "pixel", "td")


class DenoiserModule(pl.LightningModule):
    """Train ``denoiser`` so that ``detector(denoiser(x_adv))`` behaves like ``detector(x_clean)``.

    Batches are dicts with ``image`` (clean, [0, 1]), ``adv`` (its adversarial counterpart), ``label`` and,
    optionally, ``clean_logits`` (the frozen detector's logits on ``image``, computed once for the whole training
    set; computed per batch when absent). The detector is frozen (no gradients to its weights, always in eval
    mode); the loss, by ``guidance``:

    - ``logits`` (LGD, HGD's default and seed 000's choice): L1 between the detector's logits on the denoised
      adversarial image and on the clean image;
    - ``features`` (FGD): the same on the detector's last feature map (``forward_features``);
    - ``label`` (CGD): cross-entropy of the detector on the denoised image with the true labels;
    - ``pixel``: L1 between the denoised image and the clean image (the unguided baseline; DAE's loss);
    - ``td`` (transferable defense): the logit loss of LGD (denoising module) plus ``recon_weight`` times the L1
      between the denoiser's output on the clean image and the clean image (reconstruction module); both run in one
      pass of the denoiser over adversarial and clean images.

    Args:
        denoiser: images in [0, 1] -> images in [0, 1] (e.g. :class:`advdf.denoisers.DUNet`).
        detector: the detector the denoiser protects.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``); only the denoiser's parameters are passed.
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        guidance: one of :data:`GUIDANCE`.
        gaussian_std: when > 0, each batch also holds its clean images plus N(0, gaussian_std^2) noise as further
            corrupted inputs with the clean images as targets (the denoising autoencoder's training).
        recon_weight: weight of the reconstruction term of ``guidance="td"``.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        detector: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        guidance: str = "logits",
        gaussian_std: float = 0.0,
        recon_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if guidance not in GUIDANCE:
            raise ConfigError(f"denoiser guidance={guidance!r} is unknown; choose one of {GUIDANCE}")
        if gaussian_std < 0 or recon_weight < 0:
            raise ConfigError(f"gaussian_std and recon_weight must be >= 0, got {gaussian_std}, {recon_weight}")
        self.save_hyperparameters(ignore=["denoiser", "detector", "optimizer", "scheduler"])
        self.denoiser = denoiser
        self.detector = detector.requires_grad_(False).eval()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.guidance = guidance
        self.gaussian_std = float(gaussian_std)
        self.recon_weight = float(recon_weight)

    def train(self, mode: bool = True) -> DenoiserModule:
        super().train(mode)
        self.detector.eval()  # frozen: batch-norm statistics and dropout stay as trained
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x)

    def _corrupted(self, batch: dict) -> dict:
        """The batch's inputs (adversarial, plus Gaussian-noised clean images when ``gaussian_std`` > 0),
        their clean targets, labels and the detector's clean logits (computed here when the batch lacks them)."""
        clean, label = batch["image"], batch["label"]
        target_logits = batch.get("clean_logits")
        if target_logits is None and self.guidance in ("logits", "td"):
            with torch.no_grad():
                target_logits = self.detector(clean)
        out = {"input": batch["adv"], "clean": clean, "label": label, "clean_logits": target_logits}
        if self.gaussian_std > 0:
            noisy = (clean + self.gaussian_std * torch.randn_like(clean)).clamp(0, 1)
            out = {"input": torch.cat([batch["adv"], noisy]), "clean": torch.cat([clean, clean]),
                   "label": torch.cat([label, label]),
                   "clean_logits": None if target_logits is None else torch.cat([target_logits, target_logits])}
        return out

    def guided_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The guidance loss and the detector's logits on the denoised corrupted images (None for the pixel loss
        in training, where the detector is not needed)."""
        b = self._corrupted(batch)
        clean, n = b["clean"], len(b["input"])
        if self.guidance == "td":
            out = self.denoiser(torch.cat([b["input"], batch["image"]]))
            denoised, reconstructed = out[:n], out[n:]
            logits = self.detector(denoised)
            loss = F.l1_loss(logits, b["clean_logits"]) + self.recon_weight * F.l1_loss(reconstructed, batch["image"])
            return loss, logits
        denoised = self.denoiser(b["input"])
        if self.guidance == "features":
            with torch.no_grad():
                target = self.detector.forward_features(clean)
            features = self.detector.forward_features(denoised)
            return F.l1_loss(features, target), self.detector.forward_head(features)
        if self.guidance == "pixel":  # the detector only reports validation accuracy: no graph through it
            if self.training:
                return F.l1_loss(denoised, clean), None
            with torch.no_grad():
                logits = self.detector(denoised)
            return F.l1_loss(denoised, clean), logits
        logits = self.detector(denoised)
        if self.guidance == "logits":
            return F.l1_loss(logits, b["clean_logits"]), logits
        return F.cross_entropy(logits, b["label"]), logits

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        loss, logits = self.guided_loss(batch)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True)
        if logits is not None:
            accuracy = (logits[:len(batch["label"])].argmax(1) == batch["label"]).float().mean()
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
