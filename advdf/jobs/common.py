"""Builders shared by the jobs: device, detector with weights, data module, loggers, checks of training options."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint

from advdf.data.datamodule import FFPPDataModule, check_data_options
from advdf.errors import CheckpointError, ConfigError
from advdf.models import Detector, load_detector_weights
from advdf.utils.logging_setup import default_wandb_mode

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} requested but only {torch.cuda.device_count()} CUDA devices exist")
    return device


def build_datamodule(cfg: DictConfig) -> FFPPDataModule:
    """The data module of ``cfg.data``, prepared and set up.

    A config that names a checkpoint resolves it first (its run may be ambiguous or missing), so such a mistake
    stops before any data is prepared.
    """
    datamodule = instantiate(cfg.data)
    if "checkpoint" in cfg.keys():
        _ = cfg.checkpoint
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _at_least(cfg: DictConfig, key: str, least: int, what: str, allowed: tuple = ()) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        extra = f" ({' or '.join(map(str, allowed))} also allowed)" if allowed else ""
        raise ConfigError(f"{key}={value}: must be an integer of at least {least} {what}{extra}")


def check_training_options(cfg: DictConfig) -> None:
    """Raise ConfigError with one line for a training option no run can use (zero epochs, empty batches, ...),
    before any data is prepared or weights are read."""
    _at_least(cfg, "trainer.max_epochs", 1, "epoch")
    _at_least(cfg, "trainer.max_steps", 1, "step", allowed=(-1,))
    _at_least(cfg, "trainer.accumulate_grad_batches", 1, "batch")
    _at_least(cfg, "trainer.check_val_every_n_epoch", 1, "epoch")
    _at_least(cfg, "trainer.num_nodes", 1, "node")
    devices = OmegaConf.select(cfg, "trainer.devices", default=None)
    if isinstance(devices, int) and not isinstance(devices, bool):
        _at_least(cfg, "trainer.devices", 1, "device", allowed=(-1,))
    for key in ("batch_size", "shard_size", "denoiser_data.batch_size", "adv_data.batch_size",
                "denoiser_data.per_class", "adv_data.per_class", "limit"):
        _at_least(cfg, key, 1, "sample" if "batch" not in key else "sample per batch")
    for key in ("denoiser_data.val_fraction", "adv_data.val_fraction"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not 0 < value < 1:
            raise ConfigError(f"{key}={value}: must lie strictly between 0 and 1 (a share held out for validation)")
    data = cfg.data
    if "frames_per_video_real" not in data:  # CelebA (seed 003): CelebADataModule checks its options when built
        return
    check_data_options(data.batch_size, data.num_workers, data.crop_size, data.frames_per_video_real,
                       data.frames_per_video_fake, data.input_size, data.get("test_per_class"),
                       data.get("limit_per_split"))


def record_run_dir(cfg: DictConfig, run_dir: Path, extra: dict[str, str] | None = None) -> None:
    """Write where this run goes into ``cfg`` (``trainer.default_root_dir`` and the dotted keys of ``extra``), so
    the logged and recorded configs name the run directory rather than a prefix to search."""
    with open_dict(cfg):
        cfg.trainer.default_root_dir = str(run_dir)
        for key, value in (extra or {}).items():
            OmegaConf.update(cfg, key, value, merge=False)


def load_trained_detector(cfg: DictConfig, device: torch.device) -> Detector:
    """The detector of ``cfg.model`` with the weights at ``cfg.checkpoint``, in eval mode on ``device``."""
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"no trained detector at {path}; train it first: python train.py model={cfg.model.name} "
            f"(with the same data/model settings)"
        )
    detector = instantiate(cfg.model)
    try:
        load_detector_weights(detector, path)
    except CheckpointError as err:
        raise CheckpointError(f"model={cfg.model.name}: {err}") from None
    return detector.to(device).eval()


def build_loggers(cfg: DictConfig, run_name: str | None = None, group: str | None = None) -> list:
    """Instantiate ``cfg.logger`` entries; W&B gets a per-job name and defaults to offline without a key."""
    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    loggers = []
    for conf in (cfg.get("logger") or {}).values():
        extra = {}
        if "WandbLogger" in conf.get("_target_", ""):
            Path(conf.save_dir).mkdir(parents=True, exist_ok=True)
            extra = {"name": run_name, "group": group, "job_type": cfg.task_name}
        logger = instantiate(conf, **extra)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def job_identity() -> tuple[str | None, str | None]:
    """(run name, group) for this Hydra job: multirun jobs get their number and overrides, one run each."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    overrides = ",".join(hc.overrides.task) or "defaults"
    if hc.mode.name == "MULTIRUN":
        return f"{hc.job.name}#{hc.job.num}:{overrides}", Path(hc.sweep.dir).name
    return f"{hc.job.name}:{overrides}", None


class BestCheckpoint(ModelCheckpoint):
    """A top-k checkpoint that skips the epochs a module marks ``selectable_epoch = False`` (models that are not yet
    a finished detector, e.g. before a triplet run trains its classifier)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "selectable_epoch", True):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "selectable_epoch", True):
            super().on_validation_end(trainer, pl_module)


def checkpoint_callbacks(out_dir: Path) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """``best.ckpt`` (lowest val/loss among the selectable epochs) and ``last.ckpt`` (the latest epoch) in
    ``out_dir``.

    Lightning's ``save_last`` only writes when a best checkpoint is written; resuming needs the latest epoch.
    """
    best = BestCheckpoint(dirpath=out_dir, filename="best", monitor="val/loss", mode="min",
                           enable_version_counter=False)
    latest = ModelCheckpoint(dirpath=out_dir, filename="last", monitor=None, save_top_k=1,
                             enable_version_counter=False)
    return best, latest


def fit_resumable(cfg: DictConfig, module, out_dir: Path, **data) -> tuple:
    """Fit ``module`` with ``cfg.trainer`` and ``cfg.logger``, checkpointing to ``out_dir`` and continuing from its
    ``last.ckpt`` when ``cfg.resume`` (a requeued or killed job); ``data`` is the datamodule or the dataloaders.

    Returns the trainer and the best-checkpoint callback.
    """
    best, latest = checkpoint_callbacks(out_dir)
    run_name, group = job_identity()
    trainer = instantiate(cfg.trainer, default_root_dir=str(out_dir), callbacks=[best, latest],
                          logger=build_loggers(cfg, run_name, group) or False)
    last = out_dir / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    trainer.fit(module, ckpt_path=resume_from, weights_only=True, **data)
    return trainer, best
