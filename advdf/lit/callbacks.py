"""Lightning callbacks of advdf's training runs (built from ``conf/callbacks``): the best checkpoint among the epochs
a module can be selected at, and a checkpoint written when SLURM warns a job that its time is up."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from advdf.utils.logging_setup import finish_wandb

log = logging.getLogger(__name__)


class BestCheckpoint(ModelCheckpoint):
    """A top-k checkpoint that skips the epochs a module marks ``selectable_epoch = False`` (models that are not yet
    a finished detector, e.g. before a triplet run trains its classifier)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "selectable_epoch", True):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "selectable_epoch", True):
            super().on_validation_end(trainer, pl_module)


class RequeueOnSignal(Callback):
    """Save ``<dirpath>/<filename>.ckpt`` when SLURM signals a job before its time limit (or a preemption), then
    have the job requeued; the requeued job resumes from that checkpoint (``resume=true``).

    SLURM sends ``signal`` to every task of the job (``sbatch --signal=USR2@<seconds>``, which hydra-submitit-launcher
    writes from ``signal_delay_s``). The handler only notes it; the checkpoint is written at the end of the current
    training batch, where weights and optimizer state agree, and under DDP the ranks decide together (saving is
    collective, and the signal may reach them a batch apart). Then the handler that was there before training
    started takes over: submitit's, which re-submits the job (``max_num_timeout`` timeouts at most), runs
    ``scontrol requeue`` and exits on rank 0. Without one (a job not started by submitit), rank 0 runs
    ``scontrol requeue`` itself. Every rank then exits, its loggers closed first (the requeue stops all the job's
    processes, W&B's service too; the requeued job continues the W&B run, see
    :func:`advdf.jobs.common.slurm_run_id`). A signal that arrives after the last training batch is
    handed over when training ends (the requeued job then only tests and exports).

    The callback is inert outside a SLURM job step and before training starts (the job's own handler covers data
    preparation and testing); Lightning's own SLURM auto-requeue, which would save an ``hpc_ckpt`` that advdf never
    resumes from, stays off (see :func:`advdf.jobs.common.cluster_plugins`).

    Args:
        signal: The signal's name without ``SIG``: submitit's (``SUBMITIT_PREEMPT_SIGNAL``, ``USR2`` by default;
            not ``USR1``, which Lightning's own SLURM handler and NCCL take).
        dirpath: Where the checkpoint goes: the run directory, which the jobs fill in.
        filename: The checkpoint's name without ``.ckpt``: ``last``, the file a resumed job reads.
    """

    def __init__(self, signal: str = "USR2", dirpath: str | Path | None = None, filename: str = "last") -> None:
        super().__init__()
        self.signum = _signal_number(signal)
        self.dirpath, self.filename = dirpath, filename
        self._previous = None
        self._active = self._noted = self._handed_over = False

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise ValueError("RequeueOnSignal needs dirpath (the run directory) to save its checkpoint")
        return Path(self.dirpath) / f"{self.filename}.ckpt"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its signal handlers: it restores the ones it found, not this one, at teardown.
        if not in_slurm_step():
            return
        self._previous = signal.getsignal(self.signum)
        self._active, self._noted, self._handed_over = True, False, False
        signal.signal(self.signum, self._note)

    def _note(self, signum: int, frame) -> None:
        log.warning("received %s: saving %s at the end of this training batch, then requeueing",
                    signal.Signals(signum).name, self.path)
        self._noted = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if not self._active or not trainer.strategy.reduce_boolean_decision(self._noted, all=False):
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank: rank 0 writes, all wait for it
        log.warning("saved %s (epoch %d, step %d) for the requeued job to resume from", self.path,
                    trainer.current_epoch, trainer.global_step)
        self._hand_over(trainer, together=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active and self._noted and not self._handed_over:
            self._hand_over(trainer, together=False)  # the epoch-end last.ckpt already holds the finished training
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._active:
            signal.signal(self.signum, self._previous)
            self._active = False

    def _hand_over(self, trainer: pl.Trainer, together: bool) -> None:
        """Requeue the job through the previous handler (submitit's), else ``scontrol``, and exit this process.

        The requeue stops every process of the job (W&B's service among them), so the loggers are closed first,
        and the SIGTERM it sends is ignored: this process is exiting already, and Lightning's handler would talk to
        ranks that are exiting too. With ``together`` the ranks leave once rank 0 has requeued the job (a rank
        that failed first could take the job down before it is requeued).
        """
        self._handed_over = True
        previous = self._previous
        self._restore()
        for logger in trainer.loggers:
            logger.finalize("finished")
        if "wandb" in sys.modules:
            finish_wandb()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        outcome: BaseException = SystemExit(-1)
        try:
            if callable(previous):
                previous(self.signum, None)  # submitit: re-submits, requeues, exits on rank 0; returns elsewhere
            elif trainer.is_global_zero:
                _scontrol_requeue(self.path)
        except BaseException as err:  # noqa: BLE001 - submitit's exit, or its refusal (max_num_timeout reached)
            outcome = err
        if together:
            trainer.strategy.barrier("requeue")
        raise outcome


def _scontrol_requeue(path: Path) -> None:
    job = os.environ.get("SLURM_JOB_ID", "")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    done = subprocess.run(["scontrol", "requeue", job], check=False, capture_output=True, text=True)
    if done.returncode:
        reason = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        log.error("scontrol requeue %s failed (%s); rerun the job to resume from %s", job, reason, path)
    else:
        log.warning("requeued SLURM job %s", job)


def in_slurm_step() -> bool:
    """Whether this process is a task of a SLURM job step (``srun``, as submitit starts jobs), as Lightning's
    SLURM detection decides it (an interactive ``bash`` or ``interactive`` job is not), without its warning."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def _signal_number(name: str) -> signal.Signals:
    try:
        return signal.Signals[f"SIG{str(name).upper().removeprefix('SIG')}"]
    except KeyError:
        raise ValueError(f"signal={name!r} is not a signal name (e.g. USR2, USR1, TERM)") from None
