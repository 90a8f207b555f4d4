"""What every reproduce target shares: composing configs as the entry points do, training (or reusing) the
detectors a plan lists, checking a plan before work starts, and logging long-format tables to W&B."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from advdf.errors import ConfigError
from advdf.pipelines.train import train_job
from advdf.utils.entry import CONF_DIR
from advdf.utils.io import atomic_write_json, digest
from advdf.utils.logging_setup import default_wandb_mode

log = logging.getLogger("advdf.reproduce")

AUGMENT = {"base": "none", "augmix": "augmix"}  # Table 1 variant -> conf/augment option


class CellStore:
    """Evaluated rows of one (detector, attack, kind), saved as JSON under a key that names their inputs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, *parts: str) -> Path:
        return self.directory / ("__".join(parts) + ".json")

    def get(self, key: dict, *parts: str) -> list[dict] | None:
        path = self._path(*parts)
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return saved["rows"] if saved.get("key") == digest(key) else None

    def put(self, key: dict, rows: list[dict], *parts: str) -> list[dict]:
        atomic_write_json(self._path(*parts), {"key": digest(key), "rows": rows})
        return rows


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


def log_wandb_tables(name: str, scale: str, out_dir: Path, tables: dict[str, tuple[list[dict], list[str]]],
                     images: dict[str, Path] | None = None) -> None:
    """Log long-format cell lists as W&B tables: ``{key: (cells, key columns)}``, each with its
    metric, ours and paper when the cells have them; and ``images`` (PNG files) under their keys."""
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    run = wandb.init(project="advdf", job_type="reproduce", name=f"{name}-{scale}", dir=str(out_dir),
                     config={"scale": scale})
    try:
        for key, (cells, cols) in tables.items():
            columns = [*cols, *(k for k in ("metric", "ours", "paper") if cells and k in cells[0] and k not in cols)]
            run.log({key: wandb.Table(columns=columns, data=[[c[k] for k in columns] for c in cells])})
        if images:
            run.log({key: wandb.Image(str(path)) for key, path in images.items()})
    finally:
        run.finish()
