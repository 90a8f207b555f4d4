"""LightningModule that trains seed 001's adversarial detector d(x', h') (real vs attacked face crops)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from advdf.lit.batchnorm import recalibrate_batchnorm


class AdversarialDetectorModule(pl.LightningModule):
    """Cross-entropy training of a two-input detector (:class:`advdf.xai.DetectResNet50`).

    Batches are dicts with ``image`` (face crops in [0, 1]), ``map`` (their attribution maps, same shape) and
    ``label`` (0 = real, 1 = attacked). Only parameters that require gradients reach the optimizer, so a detector
    built with ``freeze_backbone=True`` trains its head alone (seed 001's Table 4) and the finetuned one everything
    (Table 3). A batch may carry ``embedding`` (the frozen backbone's output for the pair) instead of ``image`` and
    ``map``: the head then reads it directly.

    Before each validation the batch-norm statistics of the trained layers are re-estimated over up to
    ``precise_bn_batches`` training batches (:func:`recalibrate_batchnorm`), so validation, checkpoint selection and
    the saved weights use statistics of the current weights.

    Args:
        detector: the built adversarial detector.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``; seed 001: Adam, lr 1e-3, betas (0.9, 0.999),
            eps 1e-8).
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        precise_bn_batches: training batches for the statistics (0: keep the running averages).
    """

    def __init__(self, detector: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
                 precise_bn_batches: int = 100) -> None:
        super().__init__()
        self.precise_bn_batches = int(precise_bn_batches)
        self.save_hyperparameters(ignore=["detector", "optimizer", "scheduler"])
        self.detector = detector
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = MetricCollection({"acc": BinaryAccuracy(), "auc": BinaryAUROC()})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")

    def forward(self, image: torch.Tensor, xai_map: torch.Tensor) -> torch.Tensor:
        return self.detector(image, xai_map)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        if "embedding" in batch:  # a frozen backbone's embeddings, computed once (head-only training)
            logits = self.detector.head(batch["embedding"])
        else:
            logits = self.detector(batch["image"], batch["map"])
        loss = F.cross_entropy(logits, batch["label"])
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.softmax(1)[:, 1], batch["label"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def on_validation_epoch_start(self) -> None:
        trainer = self.trainer
        if (self.precise_bn_batches <= 0 or trainer.sanity_checking or trainer.state.fn != "fit"
                or getattr(self.detector, "freeze_backbone", False)):  # head only: the batch norms are frozen
            return
        self.detector.train()
        loader = itertools.islice(trainer.train_dataloader, self.precise_bn_batches)
        recalibrate_batchnorm(self.detector, ((b["image"].to(self.device), b["map"].to(self.device)) for b in loader))
        self.detector.eval()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
