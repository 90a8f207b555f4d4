"""Train a detector from a config into its run directory: fit (resuming from that run's ``last.ckpt``), test,
export weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.jobs.common import check_training_options, fit_resumable, record_run_dir
from advdf.jobs.runs import run_of
from advdf.models import load_detector_weights, save_detector
from advdf.utils.io import atomic_write_json, digest
from advdf.utils.logging_setup import finish_wandb

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.model`` on ``cfg.data``; returns test metrics (or validation ones with ``test=false``).

    The run directory ``<paths.detector_prefix>-<digest>`` (:mod:`advdf.jobs.runs`) is known once the data is
    prepared (the digest covers the data identity). It receives ``run.json``, ``last.ckpt`` (resume),
    ``best.ckpt`` (lowest val loss), ``detector.safetensors`` (the best weights, what attack.py and evaluate.py
    load) and ``train_summary.json``.
    """
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    detector = instantiate(cfg.model)
    module = instantiate(cfg.module, detector=detector)
    datamodule.prepare_data()  # draws nothing at random: the weights above and the training below are unchanged
    run = run_of(cfg, datamodule.identity_digest)
    out_dir = run.open()
    record_run_dir(cfg, out_dir)
    log.info("run directory: %s", out_dir)
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
            "metrics": metrics, "best_checkpoint": best, "epochs": trainer.current_epoch, "run": run.digest,
            "evaluation": evaluation_of(cfg), "config": OmegaConf.to_container(cfg, resolve=True),
        })
    log.info("detector weights: %s", out_dir / "detector.safetensors")
    return metrics


def evaluation_of(cfg: DictConfig) -> dict | None:
    """What a detector's recorded test metrics depend on beyond its weights (the test subset); None without a
    test."""
    return {"test_per_class": cfg.data.get("test_per_class")} if cfg.test else None


def retest_detector(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Test metrics of the finished detector run in ``run_dir`` on ``cfg``'s test split, computed as :func:`train`
    computes them (its best checkpoint, the same trainer and module) and remembered in ``run_dir/tests/``; for a run
    reused by a config that tests on another subset than the run was."""
    evaluation = evaluation_of(cfg)
    path = run_dir / "tests" / f"{digest(evaluation)}.json"
    if path.is_file():
        return json.loads(path.read_text())["metrics"]
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module, detector=instantiate(cfg.model))
    trainer = instantiate(cfg.trainer, default_root_dir=str(run_dir), logger=False, enable_checkpointing=False)
    best = run_dir / "best.ckpt" if (run_dir / "best.ckpt").is_file() else run_dir / "last.ckpt"
    results = trainer.test(module, datamodule=datamodule, ckpt_path=str(best), weights_only=True, verbose=False)
    metrics = {k: float(v) for k, v in results[0].items()}
    atomic_write_json(path, {"evaluation": evaluation, "metrics": metrics})
    return metrics


def train_job(cfg: DictConfig) -> dict[str, float]:
    """The body of ``train.py``: check the training options, run the task's training function (``cfg.train_fn``,
    set by ``conf/task``: a detector, a denoiser defense in front of one, a paper's model such as seed 001's
    adversarial detector), then close W&B so each multirun job keeps its own run. The task names its function, so
    this generic job imports no paper's code."""
    check_training_options(cfg)
    try:
        return get_method(cfg.get("train_fn", "advdf.jobs.train.train"))(cfg)
    finally:
        finish_wandb()
