"""Training of the CelebA attribute classifier that checks seed 003's generators (multi-label BCE)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryAccuracy, MultilabelAccuracy

from advdf.errors import ConfigError
from advdf.generators.attribute_classifier import AttributeClassifier


def box_blur(x: torch.Tensor, passes: int) -> torch.Tensor:
    """``passes`` 3x3 box filters with replicated borders."""
    for _ in range(passes):
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return x


class AttributeClassifierModule(pl.LightningModule):
    """Binary cross-entropy over the attributes of :class:`advdf.generators.attribute_classifier.AttributeClassifier`
    and, when it has a style logit, over "is this image in domain B".

    With a style logit, each batch is a mix: about half of its faces go through ``domain_b`` (style 1, attributes
    unchanged), and of the others about ``blur_share`` are blurred by 1 to 3 box filters (style 0), so that the
    style logit answers the stylization and not mere smoothness, which is what an undertrained translator's outputs
    have. Training draws the mix at random; validation and test fix it by position in the batch (odd: stylized;
    every fourth from the third: blurred).

    Logs ``<stage>/loss``, ``<stage>/acc`` (mean over the attributes, on real and stylized faces),
    ``<stage>/acc_<attribute>`` and ``<stage>/acc_style``; ``val/loss`` picks the checkpoint.

    Args:
        classifier: the built classifier (kept as ``classifier``, the name its loader looks for).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        data_attributes: the names of the data's attribute vector; they must be the classifier's, in its order.
        scheduler: ``optimizer -> LRScheduler`` or ``None``.
        domain_b: images in [-1, 1] -> their domain-B version; required with a style logit.
        blur_share: share of the unstylized faces that are blurred.
    """

    def __init__(self, classifier: AttributeClassifier, optimizer: Callable[..., torch.optim.Optimizer],
                 data_attributes: list[str] | tuple[str, ...],
                 scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
                 domain_b: Callable[[torch.Tensor], torch.Tensor] | None = None, blur_share: float = 0.5) -> None:
        super().__init__()
        if not isinstance(classifier, AttributeClassifier):
            raise ConfigError(f"task=attribute_classifier trains an AttributeClassifier, got "
                              f"{type(classifier).__name__}")
        if tuple(data_attributes) != classifier.attributes:
            raise ConfigError(f"the classifier's attributes {list(classifier.attributes)} are not data.attributes "
                              f"{list(data_attributes)}")
        if classifier.style is not None and domain_b is None:
            raise ConfigError(f"the classifier has a style logit ({classifier.style!r}): module.domain_b must give "
                              "the domain-B transform")
        if not 0 <= blur_share <= 1:
            raise ConfigError(f"module.blur_share={blur_share}: must lie in [0, 1]")
        data_attributes = list(data_attributes)  # plain names in the checkpoint's hyperparameters, not a ListConfig
        self.save_hyperparameters(ignore=["classifier", "optimizer", "scheduler", "domain_b"])
        self.classifier = classifier
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.domain_b = domain_b if classifier.style is not None else None
        self.blur_share = float(blur_share)
        n = len(classifier.attributes)
        self.train_acc = MultilabelAccuracy(num_labels=n, average=None)
        self.val_acc = MultilabelAccuracy(num_labels=n, average=None)
        self.test_acc = MultilabelAccuracy(num_labels=n, average=None)
        self.train_style_acc, self.val_style_acc, self.test_style_acc = BinaryAccuracy(), BinaryAccuracy(), \
            BinaryAccuracy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def _mix(self, x: torch.Tensor, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with its stylized and blurred faces, and the style labels (N,)."""
        n = x.shape[0]
        if stage == "train":
            styled = torch.rand(n, device=x.device) < 0.5
            blurred = ~styled & (torch.rand(n, device=x.device) < self.blur_share)
            passes = int(torch.randint(1, 4, ()))
        else:
            index = torch.arange(n, device=x.device)
            styled, blurred, passes = index % 2 == 1, index % 4 == 2, 2
        out = torch.where(blurred[:, None, None, None], box_blur(x, passes), x)
        out = torch.where(styled[:, None, None, None], self.domain_b(x).to(x), out)
        return out, styled.float()

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, attrs = batch
        attrs = attrs.float()
        if self.domain_b is not None:
            x, style = self._mix(x, stage)
        logits = self.classifier(x)
        n_attrs = len(self.classifier.attributes)
        target = torch.cat([attrs, style[:, None]], 1) if self.domain_b is not None else attrs
        loss = F.binary_cross_entropy_with_logits(logits, target)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=stage != "train")
        getattr(self, f"{stage}_acc").update(logits[:, :n_attrs], attrs.long())
        if self.domain_b is not None:
            style_acc = getattr(self, f"{stage}_style_acc")
            style_acc.update(logits[:, n_attrs], style.long())
            self.log(f"{stage}/acc_style", style_acc, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def _log_accuracy(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_acc")
        if not metric.update_count:
            return
        per_attribute = metric.compute()
        self.log(f"{stage}/acc", per_attribute.mean())
        self.log_dict({f"{stage}/acc_{name}": v for name, v in zip(self.classifier.attributes, per_attribute,
                                                                    strict=True)})
        metric.reset()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_accuracy("train")

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.classifier.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
