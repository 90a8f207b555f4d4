"""DetectorModule objectives: AugMix (one forward over clean + views, CE + JSD) and the two-stage triplet run."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from advdf.errors import ConfigError
from advdf.lit import DetectorModule
from advdf.lit.losses import jsd_consistency
from advdf.models import create_detector
from tests.helpers.descent import descend

pytestmark = pytest.mark.usefixtures("one_thread")
ADAM = partial(torch.optim.Adam, lr=1e-3)


def _batch(n: int = 8, size: int = 32, views: bool = False) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(n, 3, size, size, generator=g), "label": torch.arange(n) % 2}
    if views:
        batch["augmix"] = torch.rand(n, 2, 3, size, size, generator=g)
    return batch


def test_augmix_batch_is_one_forward_with_ce_plus_jsd(tiny_model):
    module = DetectorModule(tiny_model, optimizer=ADAM, scheduler=None)
    calls = []
    tiny_model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    batch = _batch(views=True)
    loss, logits = module._train_loss(batch)
    assert calls == [3 * 8] and logits.shape == (8, 2)
    with torch.no_grad():
        x = torch.cat([batch["image"], batch["augmix"][:, 0], batch["augmix"][:, 1]])
        clean, a1, a2 = tiny_model(x).split(8)
        expected = F.cross_entropy(clean, batch["label"]) + 12.0 * jsd_consistency(clean, a1, a2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, clean, atol=1e-6)


def test_plain_batch_is_cross_entropy(tiny_model):
    module = DetectorModule(tiny_model, optimizer=ADAM, scheduler=None)
    batch = _batch()
    loss, logits = module._train_loss(batch)
    assert loss.item() == pytest.approx(F.cross_entropy(tiny_model(batch["image"]), batch["label"]).item(), rel=1e-6)


@pytest.fixture
def st_detector():
    torch.manual_seed(0)
    return create_detector("efficientnet_b4_st", input_size=32)


def test_auto_objective_follows_the_detector(st_detector, tiny_model):
    assert DetectorModule(st_detector, optimizer=ADAM).objective == "triplet"
    assert DetectorModule(tiny_model, optimizer=ADAM).objective == "ce"
    assert DetectorModule(st_detector, optimizer=ADAM, objective="ce").objective == "ce"
    with pytest.raises(ConfigError, match="objective"):
        DetectorModule(tiny_model, optimizer=ADAM, objective="focal")


def test_embedding_and_classifier_compose_to_the_forward(st_detector):
    st_detector.eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(st_detector.classify(st_detector.embed(x)), st_detector(x), atol=1e-5)
    with pytest.raises(ConfigError, match="embedding"):
        create_detector("mesonet", input_size=64).embed(torch.rand(1, 3, 64, 64))


def test_triplet_objective_decreases_on_a_tiny_batch(st_detector):
    module = DetectorModule(st_detector, optimizer=ADAM, scheduler=None)
    optimizer = module.configure_optimizers()
    batch = _batch(n=8)
    losses = descend(lambda: module._train_loss(batch)[0], optimizer, steps=8)
    assert losses[-1] < 0.5 * losses[0], losses
    # the triplet stage trains the embedding only: the classifier gets no gradient
    assert st_detector.backbone.get_classifier().weight.grad is None


def test_head_stage_trains_only_the_classifier(st_detector, monkeypatch):
    module = DetectorModule(st_detector, optimizer=ADAM, scheduler=None)
    monkeypatch.setattr(module, "_head_stage", lambda: True)
    st_detector.train()
    buffers = {k: v.clone() for k, v in st_detector.backbone.named_buffers()}
    loss, _ = module._train_loss(_batch(n=8))
    loss.backward()
    classifier = st_detector.backbone.get_classifier()
    head_params = {id(p) for p in classifier.parameters()}
    assert all(p.grad is not None for p in classifier.parameters())
    assert all(p.grad is None for p in st_detector.parameters() if id(p) not in head_params)
    # batch-norm statistics of the frozen embedding stay as they were
    assert all(torch.equal(v, buffers[k]) for k, v in st_detector.backbone.named_buffers())


def test_triplet_with_augmix_views_is_refused(st_detector):
    module = DetectorModule(st_detector, optimizer=ADAM, scheduler=None)
    with pytest.raises(ConfigError, match="AugMix"):
        module._train_loss(_batch(views=True))


def test_only_head_epochs_of_a_triplet_run_are_selectable(st_detector, tiny_model, monkeypatch):
    from types import SimpleNamespace

    epoch = SimpleNamespace(now=0)
    monkeypatch.setattr(DetectorModule, "current_epoch", property(lambda self: epoch.now))
    module = DetectorModule(st_detector, optimizer=ADAM, scheduler=None, head_epochs=1)
    module._trainer = SimpleNamespace(max_epochs=3)
    selectable = []
    for epoch.now in range(3):
        selectable.append(module.selectable_epoch)
    assert selectable == [False, False, True]
    assert DetectorModule(tiny_model, optimizer=ADAM).selectable_epoch
    with pytest.raises(ConfigError, match="head_epochs must be >= 1"):
        DetectorModule(st_detector, optimizer=ADAM, head_epochs=0)


def test_best_checkpoint_skips_epochs_that_are_not_selectable(tmp_path):
    """val/loss is lowest in the epochs the module marks unselectable; best.ckpt must come from a later one."""
    import pytorch_lightning as pl

    from advdf.jobs.common import checkpoint_callbacks

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

        @property
        def selectable_epoch(self) -> bool:
            return self.current_epoch >= 2

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", float(self.current_epoch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(4, 2)), batch_size=2)
    best, latest = checkpoint_callbacks(tmp_path)
    trainer = pl.Trainer(max_epochs=4, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[best, latest], accelerator="cpu")
    trainer.fit(Probe(), data, data)
    assert best.best_model_score.item() == 2.0  # epochs 0 and 1 (val/loss 0 and 1) were never candidates
    assert (tmp_path / "best.ckpt").is_file() and (tmp_path / "last.ckpt").is_file()


class _Trainer:
    """What DetectorModule's validation hook reads of a Lightning Trainer during a fit."""

    def __init__(self, batches: list[dict], max_epochs: int = 4) -> None:
        self.train_dataloader, self.sanity_checking, self.max_epochs = batches, False, max_epochs
        self.state = type("State", (), {"fn": "fit"})()


def test_precise_batch_norm_replaces_the_running_averages_by_the_training_batches_statistics():
    torch.manual_seed(0)
    detector = create_detector("mesonet", input_size=32)
    module = DetectorModule(detector, optimizer=ADAM, precise_bn_batches=2)
    module._trainer = _Trainer([_batch(n=8) for _ in range(3)])
    bn = next(m for m in detector.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = bn.register_forward_hook(lambda m, args, out: seen.append(args[0].mean(dim=(0, 2, 3))))
    module.on_validation_epoch_start()
    hook.remove()
    assert len(seen) == 2  # precise_bn_batches, not the whole loader
    assert torch.allclose(bn.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert not detector.training and bn.momentum == 0.1
    module.precise_bn_batches = 0
    before = bn.running_mean.clone()
    module.on_validation_epoch_start()
    assert torch.equal(bn.running_mean, before)


def test_the_test_reports_accuracy_under_jpeg_and_noise(tiny_model):
    module = DetectorModule(tiny_model, optimizer=ADAM, test_jpeg_quality=75, test_noise_std=4 / 255)
    x = F.interpolate(_batch()["image"][:, :, :4, :4], size=32, mode="bilinear")  # smooth, like a photograph
    jpeg, noise = module.probes["jpeg"](x, 0), module.probes["noise"](x, 3)
    assert jpeg.shape == x.shape and 0 < (jpeg - x).abs().mean() < 0.03
    assert torch.equal(noise, module.probes["noise"](x, 3)) and not torch.equal(noise, module.probes["noise"](x, 4))
    assert (noise - x).std().item() == pytest.approx(4 / 255, rel=0.2) and noise.min() >= 0 and noise.max() <= 1
    assert not DetectorModule(tiny_model, optimizer=ADAM, test_jpeg_quality=None, test_noise_std=None).probes
