"""Staged reproduction: a plan's training runs found wave by wave and fanned out through a Hydra launcher.

A reproduce plan is ordinary serial code that calls :func:`advdf.jobs.plan.ensure_run` for every model it needs.
Run inside :func:`staging`, that call does not train: a run that is not finished is *recorded* as a job of the
current wave and a :class:`PendingRun` stands in for it; a run whose config names a pending run's directory (a
fine-tuning start, a frozen detector, a judge) is recorded for a later wave. The plan goes on until it needs what a
pending run would produce: at the :func:`barrier` each plan calls after a training stage (or when it reads a pending
run's weights), and that pass ends there.

:func:`run_staged` repeats such passes: each wave's jobs run as one Hydra multirun of ``stage.py`` (the basic
launcher locally, a submitit job array on SLURM), every job a resumable ``ensure_run`` keyed by its run identity;
once a pass records nothing, it has reused every run, and that pass is the *collect* stage: it builds the sets and
cells the tables need from the store and writes the tables, exactly as the serial run would.

:func:`plan_stages` is one pass that launches nothing: the dry run's stages and job counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from advdf.errors import AdvdfError, ConfigError
from advdf.jobs.common import resolve_device
from advdf.jobs.estimate import NO_WEIGHTS, step_seconds, train_steps
from advdf.jobs.runs import KINDS, WEIGHTS, path_override
from advdf.utils.entry import REPO_ROOT
from advdf.utils.io import atomic_write_json

log = logging.getLogger("advdf.reproduce")

STAGE_SCRIPT = REPO_ROOT / "stage.py"
MAX_WAVES = 16  # a plan that still records jobs after this many waves is stuck (a job that never finishes its run)


class StagePending(AdvdfError):
    """A staged pass needed the result of a run that has not been trained yet; the pass ends here."""


@dataclass(frozen=True)
class Job:
    """One training run to launch: its kind, the model it trains, its config (unresolved YAML) and its wave."""

    kind: str
    model: str
    config: str
    wave: int
    directory: str | None  # None for a run whose directory depends on an earlier wave's weights

    def describe(self) -> str:
        return f"{self.kind} {self.model}"


@dataclass(frozen=True)
class PendingRun:
    """Stands in for :class:`advdf.jobs.plan.Trained` while its run waits for its wave. ``override`` names the run's
    directory (so later configs that name it are recognized as depending on it); reading its weights ends the pass;
    its metrics are empty (the pass ends at the plan's next :func:`barrier`, before anything is written)."""

    directory: Path
    kind: str
    wave: int
    reused: bool = False
    wall_s: float = 0.0

    @property
    def metrics(self) -> dict:
        return {}  # nothing measured yet; the plan's barrier() ends the pass before anything is written

    @property
    def weights(self) -> Path:
        raise StagePending(f"{KINDS.get(self.kind, self.kind)} at {self.directory} is not trained yet")

    def override(self, key: str = "checkpoint") -> str:
        return path_override(key, self.directory / WEIGHTS[self.kind])


@dataclass
class Collector:
    """The jobs one pass recorded, and the directories of the runs they will train (with their waves)."""

    dry: bool = False  # a dry run: a run whose identity cannot be computed here (its data absent) is recorded too
    jobs: list[Job] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)  # directory (or a deferred run's token) -> wave

    def wave_after(self, cfg: DictConfig) -> int:
        """0 for a config that names no pending run, else one wave after the latest one it names."""
        text = OmegaConf.to_yaml(cfg)
        named = [w for d, w in self.pending.items() if d in text]
        return max(named) + 1 if named else 0

    def record(self, cfg: DictConfig, kind: str, directory: Path | None, wave: int) -> PendingRun:
        key = str(directory) if directory is not None else f"pending-run-{len(self.jobs):05d}"
        net = "generator.name" if kind == "generator" else "model.name"
        model = str(OmegaConf.select(cfg, net, default=None) or kind)
        variant = OmegaConf.select(cfg, "variant", default=None)
        detail = [v for v in (variant if kind == "detector" else None,
                              OmegaConf.select(cfg, "data.manipulation", default=None)) if v]
        if detail:
            model = f"{model} ({', '.join(map(str, detail))})"
        self.jobs.append(Job(kind, model, OmegaConf.to_yaml(cfg), wave,
                             None if directory is None else str(directory)))
        self.pending[key] = wave
        return PendingRun(Path(key), kind, wave)

    def waves(self) -> list[list[Job]]:
        out: dict[int, list[Job]] = {}
        for job in self.jobs:
            out.setdefault(job.wave, []).append(job)
        return [out[w] for w in sorted(out)]


_ACTIVE: contextvars.ContextVar[Collector | None] = contextvars.ContextVar("advdf_staging", default=None)


def active() -> Collector | None:
    """The collector of the staged pass running now (None: train as usual)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def staging(collector: Collector) -> Iterator[Collector]:
    token = _ACTIVE.set(collector)
    try:
        yield collector
    finally:
        _ACTIVE.reset(token)


def barrier(what: str = "the plan's next stage") -> None:
    """End a staged pass here when it recorded runs to train: what follows needs them (plans call it after each
    training stage, before using weights or writing anything). Outside a staged pass it does nothing."""
    collector = active()
    if collector is not None and collector.jobs:
        raise StagePending(f"{what} waits for {len(collector.jobs)} run(s) to train")


def one_pass(plan: Callable[[], object], dry: bool = False
             ) -> tuple[Collector, object | None, BaseException | None]:
    """Run ``plan`` once under :func:`staging`; returns what it recorded, its result (if it finished) and the error
    that ended it (a :class:`StagePending`, or any error while runs are pending: it may come from their absence)."""
    collector = Collector(dry=dry)
    with staging(collector):
        try:
            return collector, plan(), None
        except StagePending as err:
            return collector, None, err
        except Exception as err:  # noqa: BLE001 -- re-raised by the caller unless runs were pending
            if not collector.jobs:
                raise
            return collector, None, err


def write_wave(jobs: list[Job], path: Path) -> Path:
    atomic_write_json(path, {"jobs": [{"kind": j.kind, "model": j.model, "config": j.config} for j in jobs]})
    return path


def launch_wave(wave_file: Path, n: int, sweep_dir: Path, launcher: str, launcher_overrides: list[str]) -> None:
    """``stage.py --multirun`` over the wave's jobs through ``hydra/launcher=<launcher>``; waits for all of them
    (the next wave depends on this one) and raises ConfigError with the failing log's path if one fails."""
    chosen = [] if any(o.startswith("hydra/launcher=") for o in launcher_overrides) else [f"hydra/launcher={launcher}"]
    cmd = [sys.executable, str(STAGE_SCRIPT), "--multirun", f"wave={wave_file}",
           f"index={','.join(map(str, range(n)))}", f"hydra.sweep.dir={sweep_dir}", *chosen, *launcher_overrides]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log_file = sweep_dir / "launch.log"
    log.info("launching %d job(s) through hydra/launcher=%s (follow: tail -f %s)", n, launcher, log_file)
    with open(log_file, "w") as out:
        code = subprocess.run(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = "\n".join(log_file.read_text().strip().splitlines()[-5:])
        raise ConfigError(f"a job of {wave_file.name} failed (exit {code}); see {log_file}:\n{tail}")


def run_staged(plan: Callable[[], object], work_dir: Path, launcher: str = "basic",
               launcher_overrides: list[str] | None = None) -> object:
    """Run ``plan`` in waves (see the module docstring) and return the result of its collect pass."""
    for wave in range(MAX_WAVES):
        collector, result, err = one_pass(plan)
        if not collector.jobs:
            if err is not None:  # pending without a job to run: a bug, not a wave
                raise err
            return result
        jobs = collector.waves()[0]  # the first wave only: later ones are found again once it has run
        name = f"wave{wave:02d}-{time.strftime('%Y%m%d-%H%M%S')}"
        wave_file = write_wave(jobs, work_dir / f"{name}.json")
        log.info("stage train, wave %d: %s", wave, ", ".join(j.describe() for j in jobs))
        launch_wave(wave_file, len(jobs), work_dir / name, launcher, list(launcher_overrides or []))
    raise ConfigError(f"the plan still records runs to train after {MAX_WAVES} waves; see {work_dir}")


def plan_stages(plan: Callable[[], object]) -> tuple[Collector, BaseException | None]:
    """One staged pass that launches nothing: the runs the plan would train now and in the waves after."""
    collector, _, err = one_pass(plan, dry=True)
    return collector, err


def dry_run_report(title: str, collector: Collector, err: BaseException | None, timing: bool = True) -> str:
    """The stages of a dry run as Markdown: each wave's jobs with their steps and, when ``timing``, the seconds per
    step measured here and the device-hours they add up to (:mod:`advdf.jobs.estimate`)."""
    device = resolve_device("auto")
    where = f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                f" ({torch.get_num_threads()} threads)")
    lines = [f"{title}, dry run: nothing is trained, generated or written", "",
             f"step times measured on: {where}" if timing else "step times: not measured (--no-timing)", "",
             "| stage | wave | job | steps | s / step | device-hours |", "|---|---:|---|---:|---:|---:|"]
    measured: dict[tuple, float] = {}
    total_h, total_jobs = 0.0, 0
    for wave in collector.waves():
        for job in wave:
            cfg = OmegaConf.create(job.config)
            steps = train_steps(cfg)
            sec = None
            if timing:
                net = cfg.generator if job.kind == "generator" else cfg.model
                shape = {k: v for k, v in OmegaConf.to_container(net).items() if k not in NO_WEIGHTS}
                key = (job.kind, json.dumps(shape, sort_keys=True, default=str), int(cfg.data.batch_size))
                if key not in measured:
                    measured[key] = step_seconds(cfg, device)
                sec = measured[key]
            hours = None if sec is None else steps * sec / 3600
            total_h += hours or 0.0
            total_jobs += 1
            lines.append(f"| train | {job.wave} | {job.describe()} | {steps} | "
                         f"{'—' if sec is None else f'{sec:.3g}'} | {'—' if hours is None else f'{hours:.3g}'} |")
    lines.append("| collect | — | sets, cells and tables (and the runs that train on sets, found once the sets exist) "
                 "| — | — | — |")
    lines += ["", f"{total_jobs} training job(s) in {len(collector.waves())} wave(s)"
              + (f", {total_h:.3g} device-hours on {device.type} for their steps" if timing else "")]
    if err is not None and not isinstance(err, StagePending):
        lines.append(f"the pass stopped early at: {type(err).__name__}: {str(err).splitlines()[0]}")
    return "\n".join(lines) + "\n"
