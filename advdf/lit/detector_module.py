"""LightningModule that trains any registered detector (binary real/fake, two logits)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from advdf.metrics import detection_report


class DetectorModule(pl.LightningModule):
    """Cross-entropy training of a :class:`advdf.models.Detector`.

    Args:
        detector: the built detector (input in [0, 1], logits (N, 2)).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
    """

    def __init__(
        self,
        detector: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
    ) -> None:
        super().__init__()
        # Built objects stay out of the checkpoint's hyperparameters (they are code, not configuration).
        self.save_hyperparameters(ignore=["detector", "optimizer", "scheduler"])
        self.detector = detector
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = MetricCollection({"acc": BinaryAccuracy(), "auc": BinaryAUROC()})
        # One metric object per stage ("train" cannot be a ModuleDict key: it shadows Module.train).
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector(x)

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.detector(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        fake_prob = logits.softmax(1)[:, 1]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(fake_prob, batch["label"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss, logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        self._test_outputs.append((logits.argmax(1).cpu(), batch["label"].cpu(), batch["video"].cpu()))

    def on_test_epoch_end(self) -> None:
        if not self._test_outputs:
            return
        pred, label, video = (torch.cat(t) for t in zip(*self._test_outputs, strict=True))
        self._test_outputs.clear()
        for key, value in detection_report(pred, label, video).items():
            self.log(f"test/{key}", value, sync_dist=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
