"""LightningModule that trains any registered detector (binary real/fake, two logits)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from advdf.defenses import JPEG
from advdf.errors import ConfigError
from advdf.lit.batchnorm import recalibrate_batchnorm
from advdf.lit.losses import augmix_loss, batch_hard_triplet_loss
from advdf.metrics import detection_report

OBJECTIVES = ("auto", "ce", "triplet")


def _noisy(x: torch.Tensor, batch_idx: int, std: float) -> torch.Tensor:
    """``x`` plus Gaussian noise of ``std``, the same draw for the same batch on every run, clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(batch_idx)
    return (x + std * torch.randn(x.shape, generator=generator).to(x)).clamp(0, 1)


class DetectorModule(pl.LightningModule):
    """Training of a :class:`advdf.models.Detector` with one of two objectives.

    - ``ce``: cross-entropy on the logits. When the batch carries AugMix views (``batch["augmix"]``, see
      :class:`advdf.data.augmix.AugMixViews`), clean and augmented images go through the detector in one forward
      and the loss is CE on the clean view plus ``jsd_weight`` times the Jensen-Shannon consistency (AugMix).
    - ``triplet`` (EfficientNetB4ST): a batch-hard triplet-margin loss on the detector's embedding (L2-normalized,
      so the margin is on the unit sphere), then, for the last ``head_epochs`` epochs, cross-entropy on the
      classifier alone over the frozen embedding.

    Validation and test always report cross-entropy of the whole detector (``val/loss`` picks the checkpoint).
    Before each validation of a fit the batch-norm statistics are re-estimated over up to ``precise_bn_batches``
    training batches with the current weights (:func:`advdf.lit.batchnorm.recalibrate_batchnorm`): a short run
    moves the weights faster than the running averages follow, and validation, checkpoint selection, the saved
    weights and the test then see the statistics of the model they normalize. A triplet run's head epochs keep
    the statistics its (frozen) embedding had when the head started training.

    Args:
        detector: the built detector (input in [0, 1], logits (N, 2)).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        objective: ``ce``, ``triplet``, or ``auto`` (the detector's own ``objective`` attribute, else ``ce``).
        jsd_weight: weight of the AugMix consistency term (Hendrycks et al.: 12).
        triplet_margin: margin of the triplet loss between unit-norm embeddings (distances lie in [0, 2]).
        head_epochs: epochs at the end of a triplet run that train only the classifier.
        precise_bn_batches: training batches for the batch-norm statistics before each validation (0: keep the
            running averages).
        test_jpeg_quality: the test also reports accuracy on JPEG-compressed crops at this quality
            (``test/acc_jpeg``), so a detector whose cue exists only in exact pixel values shows it; None: off.
        test_noise_std: likewise with Gaussian pixel noise of this std, a fixed draw (``test/acc_noise``).
    """

    def __init__(
        self,
        detector: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        objective: str = "auto",
        jsd_weight: float = 12.0,
        triplet_margin: float = 0.5,
        head_epochs: int = 1,
        precise_bn_batches: int = 0,
        test_jpeg_quality: int | None = 75,
        test_noise_std: float | None = 4 / 255,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ConfigError(f"module.objective={objective!r} is unknown; choose one of {OBJECTIVES}")
        if objective == "auto":
            objective = getattr(detector, "objective", "ce")
        if head_epochs < 0 or jsd_weight < 0 or triplet_margin < 0 or precise_bn_batches < 0:
            raise ConfigError("module.head_epochs, module.jsd_weight, module.triplet_margin and "
                              "module.precise_bn_batches must be >= 0")
        if objective == "triplet" and head_epochs < 1:
            raise ConfigError("module.head_epochs must be >= 1 with the triplet objective: only those epochs train "
                              "the classifier")
        # Built objects stay out of the checkpoint's hyperparameters (they are code, not configuration).
        self.save_hyperparameters(ignore=["detector", "optimizer", "scheduler"])
        self.detector = detector
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.objective = objective
        self.jsd_weight = jsd_weight
        self.triplet_margin = triplet_margin
        self.head_epochs = head_epochs
        self.precise_bn_batches = int(precise_bn_batches)
        probes: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {}
        if test_jpeg_quality is not None:
            jpeg = JPEG(quality=test_jpeg_quality)
            probes["jpeg"] = lambda x, _: jpeg(x)
        if test_noise_std:
            probes["noise"] = partial(_noisy, std=float(test_noise_std))
        self.probes = probes
        self.probe_metrics = nn.ModuleDict({name: BinaryAccuracy() for name in probes})
        metrics = MetricCollection({"acc": BinaryAccuracy(), "auc": BinaryAUROC()})
        # One metric object per stage ("train" cannot be a ModuleDict key: it shadows Module.train).
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector(x)

    def on_fit_start(self) -> None:
        max_epochs = self.trainer.max_epochs
        if self.objective == "triplet" and max_epochs is not None and self.head_epochs >= max_epochs:
            raise ConfigError(f"module.head_epochs={self.head_epochs} leaves no triplet epoch in "
                              f"trainer.max_epochs={max_epochs}")

    def _head_stage(self) -> bool:
        """True during the classifier-only epochs that end a triplet run."""
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        return max_epochs is not None and self.current_epoch >= max_epochs - self.head_epochs

    @property
    def selectable_epoch(self) -> bool:
        """Whether this epoch's model may become the best checkpoint: a triplet run's classifier is untrained (its
        validation loss meaningless) until the head epochs."""
        return self.objective != "triplet" or self._head_stage()

    def on_validation_epoch_start(self) -> None:
        trainer = self.trainer
        if (self.precise_bn_batches <= 0 or trainer.sanity_checking or trainer.state.fn != "fit"
                or (self.objective == "triplet" and self._head_stage())):
            return
        self.detector.train()
        batches = itertools.islice(trainer.train_dataloader, self.precise_bn_batches)
        recalibrate_batchnorm(self.detector, ((b["image"].to(self.device),) for b in batches))
        self.detector.eval()

    def _train_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective's loss and the clean images' logits (for metrics), with one forward per image."""
        x, y = batch["image"], batch["label"]
        views = batch.get("augmix")
        if self.objective == "triplet":
            if views is not None:
                raise ConfigError("AugMix views and the triplet objective cannot be combined")
            if self._head_stage():
                self.detector.backbone.eval()  # frozen embedding: no batch-norm statistics updates
                with torch.no_grad():
                    embedding = self.detector.embed(x)
                logits = self.detector.classify(embedding)
                return F.cross_entropy(logits, y), logits
            embedding = self.detector.embed(x)
            logits = self.detector.classify(embedding.detach())  # metrics only; the classifier waits
            return batch_hard_triplet_loss(F.normalize(embedding, dim=1), y, self.triplet_margin), logits
        if views is not None:
            n = len(x)
            logits = self.detector(torch.cat([x, views[:, 0], views[:, 1]]))
            loss, parts = augmix_loss(logits, y, self.jsd_weight)
            self.log_dict({f"train/{k}": v for k, v in parts.items()}, on_step=True, on_epoch=True)
            return loss, logits[:n]
        logits = self.detector(x)
        return F.cross_entropy(logits, y), logits

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        if stage == "train":
            loss, logits = self._train_loss(batch)
        else:
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
        for name, probe in self.probes.items():
            probed = self.detector(probe(batch["image"], batch_idx))
            self.probe_metrics[name].update(probed.softmax(1)[:, 1], batch["label"])
            self.log(f"test/acc_{name}", self.probe_metrics[name], on_step=False, on_epoch=True)
        self._test_outputs.append((logits.argmax(1).cpu(), batch["label"].cpu(), batch["video"].cpu()))

    def on_test_epoch_end(self) -> None:
        if not self._test_outputs:
            return
        pred, label, video = (torch.cat(t) for t in zip(*self._test_outputs, strict=True))
        self._test_outputs.clear()
        for key, value in detection_report(pred, label, video).items():
            # counts add up over DDP ranks; rates are averaged
            self.log(f"test/{key}", value, sync_dist=True, reduce_fx="sum" if key.startswith("n") else "mean")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
