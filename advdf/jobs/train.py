"""Train a detector from a config: fit (resuming from the config-derived ``last.ckpt``), test, export weights."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.jobs.common import fit_resumable
from advdf.models import load_detector_weights, save_detector
from advdf.utils.io import atomic_write_json
from advdf.utils.logging_setup import finish_wandb

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.model`` on ``cfg.data``; returns test metrics (or validation ones with ``test=false``).

    Checkpoints go to ``cfg.paths.detector_dir``: ``last.ckpt`` (resume), ``best.ckpt`` (lowest val loss) and
    ``detector.safetensors`` (the best weights, what attack.py and evaluate.py load).
    """
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.detector_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate(cfg.data)
    detector = instantiate(cfg.model)
    module = instantiate(cfg.module, detector=detector)
    trainer, checkpoint = fit_resumable(cfg, module, out_dir, datamodule=datamodule)
    last = out_dir / "last.ckpt"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = checkpoint.best_model_path or str(last)
    if cfg.test:
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        metrics = {k: float(v) for k, v in results[0].items()}
    if trainer.is_global_zero:
        # Export the best checkpoint's weights (the ones tested), so attack/evaluate see exactly this detector.
        load_detector_weights(module.detector, best)
        save_detector(module.detector, out_dir / "detector.safetensors")
        atomic_write_json(out_dir / "train_summary.json", {
            "metrics": metrics, "best_checkpoint": best, "epochs": trainer.current_epoch,
            "config": OmegaConf.to_container(cfg, resolve=True),
        })
    log.info("detector weights: %s", out_dir / "detector.safetensors")
    return metrics


def train_job(cfg: DictConfig) -> dict[str, float]:
    """The body of ``train.py``: run the task's training function (``cfg.train_fn``, set by ``conf/task``: a
    detector, a denoiser defense in front of one, a paper's model such as seed 001's adversarial detector), then
    close W&B so each multirun job keeps its own run. The task names its function, so this generic job imports no
    paper's code."""
    try:
        return get_method(cfg.get("train_fn", "advdf.jobs.train.train"))(cfg)
    finally:
        finish_wandb()
