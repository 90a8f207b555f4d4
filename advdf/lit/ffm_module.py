"""LightningModule that trains a forensic autoencoder with latent zones (seed 002's ClassNSeg, ForensicTransfer).

Loss (ClassNSeg's recipe): L_act(x, l) + gamma * (L_seg + L_rec), where the decoder sees the zone of the true label
(selection), L_seg is the cross-entropy of the segmentation to the forged-region mask (models with a segmentation
branch) and L_rec the reconstruction error of the normalized input (``rec_loss``: ``mse`` as ClassNSeg, ``l1`` as
ForensicTransfer). Validation and test decode the predicted zone, as the model is used, and report accuracy, the
mask's IoU and pixel accuracy, and the reconstruction error, per stage.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from advdf.errors import ConfigError
from advdf.forensics.base import ZoneAutoencoder, activation_loss, segmentation_loss, zone_of_label
from advdf.lit.batchnorm import recalibrate_batchnorm
from advdf.metrics import iou, pixel_accuracy

REC_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class FFMModule(pl.LightningModule):
    """Training of a :class:`advdf.forensics.ZoneAutoencoder`.

    Args:
        detector: the built forensic autoencoder (input in [0, 1]); named as the detectors' module names it, so the
            training job, checkpoints and exported weights are shared with theirs.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        gamma: weight of the decoders' losses (ClassNSeg: 1).
        rec_loss: ``mse`` or ``l1``.
        precise_bn_batches: training batches that re-estimate the batch-norm statistics before each validation of
            a fit (as :class:`advdf.lit.DetectorModule`; 0: keep the running averages).
    """

    def __init__(self, detector: ZoneAutoencoder, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None, gamma: float = 1.0,
                 rec_loss: str = "mse", precise_bn_batches: int = 0) -> None:
        super().__init__()
        if not isinstance(detector, ZoneAutoencoder):
            raise ConfigError(f"task=ffm trains a forensic autoencoder (model=classnseg | forensic_transfer), got "
                              f"{type(detector).__name__}")
        if rec_loss not in REC_LOSSES:
            raise ConfigError(f"module.rec_loss={rec_loss!r} is unknown; choose one of {sorted(REC_LOSSES)}")
        if gamma < 0 or precise_bn_batches < 0:
            raise ConfigError(f"module.gamma and module.precise_bn_batches must be >= 0, got {gamma} and "
                              f"{precise_bn_batches}")
        self.precise_bn_batches = int(precise_bn_batches)
        self.save_hyperparameters(ignore=["detector", "optimizer", "scheduler"])
        self.detector = detector
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gamma = float(gamma)
        self.rec_loss = REC_LOSSES[rec_loss]
        metrics = MetricCollection({"acc": BinaryAccuracy(), "auc": BinaryAUROC()})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        means = ("iou", "pixel_acc", "rec_err", "iou_fake")
        self.val_means = torch.nn.ModuleDict({k: MeanMetric() for k in means})
        self.test_means = torch.nn.ModuleDict({k: MeanMetric() for k in means})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(x)

    def on_validation_epoch_start(self) -> None:
        trainer = self.trainer
        if self.precise_bn_batches <= 0 or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.detector.train()
        batches = itertools.islice(trainer.train_dataloader, self.precise_bn_batches)
        recalibrate_batchnorm(self.detector, ((b["image"].to(self.device), zone_of_label(b["label"]).to(self.device))
                                              for b in batches))
        self.detector.eval()

    def _losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        x, y = batch["image"], batch["label"]
        parts = {"act": activation_loss(out["energies"], zone_of_label(y).float()).mean(),
                 "rec": self.rec_loss(out["recon"], self.detector.normalize(x))}
        if "seg" in out:
            if "mask" not in batch:
                raise ConfigError(f"{type(self.detector).__name__} trains a segmentation: the data needs "
                                  "data.masks=true (task=ffm sets it)")
            parts["seg"] = segmentation_loss(out["seg"], batch["mask"]).mean()
        parts["loss"] = parts["act"] + self.gamma * (parts["rec"] + parts.get("seg", 0.0))
        return parts

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        x, y = batch["image"], batch["label"]
        out = self.detector(x, zone=zone_of_label(y) if stage == "train" else None)
        parts = self._losses(out, batch)
        on_step = stage == "train"
        self.log_dict({f"{stage}/{k}": v for k, v in parts.items() if k != "loss"}, on_step=on_step, on_epoch=True,
                      prog_bar=False, sync_dist=not on_step)
        self.log(f"{stage}/loss", parts["loss"], on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(out["logits"].softmax(1)[:, 1], y)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        if stage != "train":
            self._log_maps(out, batch, stage)
        return parts["loss"]

    def _log_maps(self, out: dict, batch: dict, stage: str) -> None:
        means = getattr(self, f"{stage}_means")
        x, y = batch["image"], batch["label"]
        err = (out["recon"] - self.detector.normalize(x)).pow(2).flatten(1).mean(1)
        means["rec_err"].update(err)
        if "seg" in out and "mask" in batch:
            pred = (out["seg"][:, 1:] > 0.5).float()
            overlap = iou(pred, batch["mask"])
            means["iou"].update(overlap)
            means["pixel_acc"].update(pixel_accuracy(pred, batch["mask"]))
            if (y == 1).any():
                means["iou_fake"].update(overlap[y == 1])
        for name, metric in means.items():
            if metric.update_count:
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.detector.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
