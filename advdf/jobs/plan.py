"""What every reproduce plan shares: composing configs as the entry points do, training (or reusing) the models a
plan lists, and checking a plan before work starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from advdf.errors import ConfigError
from advdf.jobs.train import train_job
from advdf.utils.entry import CONF_DIR

log = logging.getLogger("advdf.reproduce")

AUGMENT = {"base": "none", "augmix": "augmix"}  # Table 1 variant -> conf/augment option


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` exactly as the Hydra entry point would."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=config_name):
        return compose(config_name=config_name, overrides=overrides)


def ensure_trained(overrides: list[str]) -> tuple[dict, bool]:
    """Train the detector of ``overrides`` unless a finished run already sits in its directory.

    Returns its metrics and whether they come from an earlier run (nothing was trained).
    """
    cfg = compose_config("train", overrides)
    summary = Path(cfg.paths.detector_dir) / "train_summary.json"
    if summary.is_file() and (Path(cfg.paths.detector_dir) / "detector.safetensors").is_file():
        log.info("reusing trained %s: %s", cfg.model.name, cfg.paths.detector_dir)
        return json.loads(summary.read_text())["metrics"], True
    return train_job(cfg), False


def detector_overrides(spec: DictConfig, det: str) -> list[str]:
    """Overrides of every stage of ``det``: the model and, when the plan gives one, its input side."""
    size = (spec.get("input_size") or {}).get(det)
    return [f"model={det}", *([f"model.input_size={size}"] if size is not None else [])]


def require_detectors(names: list[str]) -> None:
    """Raise ConfigError naming every detector of a plan that is not registered with a conf/model file."""
    from advdf.models import list_detectors

    unknown = [d for d in names if d not in list_detectors() or not (CONF_DIR / "model" / f"{d}.yaml").is_file()]
    if unknown:
        raise ConfigError(f"reproduce lists {unknown}, not registered detectors with a conf/model file "
                          f"(available: {', '.join(list_detectors())}); remove them or add the detectors")
