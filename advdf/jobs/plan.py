"""What every reproduce plan shares: composing configs as the entry points do, training (or reusing) the models a
plan lists, and checking a plan before work starts."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from advdf.errors import AdvdfError, ConfigError
from advdf.jobs import stages
from advdf.jobs.common import check_training_options
from advdf.jobs.runs import WEIGHTS, path_override, run_of
from advdf.jobs.stages import PendingRun
from advdf.jobs.train import evaluation_of, retest_detector, train_job
from advdf.utils.entry import CONF_DIR, register_resolvers

log = logging.getLogger("advdf.reproduce")

AUGMENT = {"base": "none", "augmix": "augmix"}  # Table 1 variant -> conf/augment option


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` exactly as the Hydra entry point would."""
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=config_name):
        return compose(config_name=config_name, overrides=overrides)


@dataclass(frozen=True)
class Trained:
    """A finished training run: its metrics, whether an earlier run was reused (nothing trained), its directory,
    and the seconds spent getting it (training, or reading and retesting a reused run)."""

    metrics: dict
    reused: bool
    directory: Path
    kind: str = "detector"
    wall_s: float = 0.0

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS[self.kind]

    def override(self, key: str = "checkpoint") -> str:
        """The override that points a later stage's ``key`` at these weights."""
        return path_override(key, self.weights)


def ensure_run(cfg: DictConfig) -> Trained | PendingRun:
    """Train the run ``cfg`` describes (detector, denoiser, ...) unless its directory holds a finished run with the
    same recorded settings; a directory recording other settings raises ConfigError.

    In a staged pass (:mod:`advdf.jobs.stages`) an unfinished run is recorded for its wave instead of trained."""
    t0 = time.perf_counter()
    check_training_options(cfg)
    collector = stages.active()
    if collector is not None and (wave := collector.wave_after(cfg)) > 0:  # it starts from a pending run
        return collector.record(cfg, cfg.get("trains", "detector"), None, wave)
    try:
        run = run_of(cfg)
    except AdvdfError:
        if collector is None or not collector.dry:
            raise
        return collector.record(cfg, cfg.get("trains", "detector"), None, 0)  # a dry run away from its data
    summary = run.finished()
    if summary is None and collector is not None:
        return collector.record(cfg, run.kind, run.directory, 0)
    if summary is None:
        metrics = train_job(cfg)
        return Trained(metrics, False, run.directory, run.kind, time.perf_counter() - t0)
    log.info("reusing trained %s: %s", run.kind, run.directory)
    metrics = summary["metrics"]
    if run.kind == "detector" and cfg.test and summary.get("evaluation") != evaluation_of(cfg):
        metrics = retest_detector(cfg, run.directory)  # the same weights, tested on this config's test subset
    return Trained(metrics, True, run.directory, run.kind, time.perf_counter() - t0)


def ensure_trained(overrides: list[str]) -> Trained:
    """Train the detector of ``overrides`` unless a finished run with these settings exists (see
    :func:`ensure_run`); later stages read it through ``Trained.override()``."""
    return ensure_run(compose_config("train", overrides))


def ensure_variants(overrides: list[str], variants: list[str], augmix_from_base: list[str] | None = None
                    ) -> dict[str, Trained]:
    """Train (or reuse) one detector's Table 1 variants (:data:`AUGMENT`), base first.

    ``augmix_from_base``: None trains the AugMix variant from the model's own initialization, as seed 000 does; a
    list of overrides (e.g. fewer epochs, a lower learning rate) fine-tunes it from the base run's weights instead,
    a cheaper schedule for small budgets; the run records the sha256 of the weights it starts from."""
    bad = [v for v in variants if v not in AUGMENT]
    if bad:
        raise ConfigError(f"reproduce.variants {bad} unknown; choose from {sorted(AUGMENT)}")
    out: dict[str, Trained] = {}
    for v in sorted(variants, key=list(AUGMENT).index):
        extra = []
        if v == "augmix" and augmix_from_base is not None:
            base = out.get("base") or ensure_trained([*overrides, f"augment={AUGMENT['base']}"])
            extra = [base.override("model.checkpoint_path"), *augmix_from_base]
        out[v] = ensure_trained([*overrides, f"augment={AUGMENT[v]}", *extra])
    return out


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


def require_attack_configs(names: list[str], what: str = "reproduce attacks") -> None:
    """Raise ConfigError naming every attack of a plan without a conf/attack file."""
    missing = [a for a in names if not (CONF_DIR / "attack" / f"{a}.yaml").is_file()]
    if missing:
        raise ConfigError(f"{what} {missing} have no conf/attack file")


def run_wave_job(wave_file: str | Path, index: int) -> dict:
    """The body of ``stage.py``: job ``index`` of a wave file, trained (or resumed, or reused) by its run identity."""
    path = Path(wave_file)
    if not path.is_file():
        raise ConfigError(f"wave={path}: no such wave file (written by python -m advdf.papers.reproduce --launcher)")
    jobs = json.loads(path.read_text())["jobs"]
    if not 0 <= index < len(jobs):
        raise ConfigError(f"index={index}: {path.name} has {len(jobs)} job(s)")
    job = jobs[index]
    log.info("stage job %d/%d: %s %s", index + 1, len(jobs), job["kind"], job["model"])
    trained = ensure_run(OmegaConf.create(job["config"]))
    return {"directory": str(trained.directory), "reused": trained.reused, "metrics": trained.metrics}
