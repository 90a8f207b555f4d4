"""The requeue callback in one process: on SLURM's signal it saves last.ckpt at the end of the batch and hands the job
to the handler that requeues it (submitit's, else scontrol), and a fit from that checkpoint continues where it
stopped. The same on the local SLURM cluster, with two DDP ranks: tests/test_slurm_ddp.py."""

from __future__ import annotations

import os
import signal

import pytest
import pytorch_lightning as pl
import torch

from advdf.jobs.common import cluster_plugins, slurm_run_id
from advdf.lit.callbacks import RequeueOnSignal


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)


class _Probe(pl.LightningModule):
    """Sends itself ``signal`` at training step ``at`` (or in the last validation, ``at="last_val"``)."""

    def __init__(self, at: int | str | None = None):
        super().__init__()
        self.layer, self.at, self.steps, self.handler_seen = torch.nn.Linear(2, 1), at, [], None

    def training_step(self, batch, batch_idx):
        self.steps.append(self.global_step)
        self.handler_seen = signal.getsignal(signal.SIGUSR2)
        if self.global_step == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        last = self.current_epoch == self.trainer.max_epochs - 1
        if self.at == "last_val" and last and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGUSR2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


BATCHES, EPOCHS = 4, 3
_DATA = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(2 * BATCHES, 2)), batch_size=2)


def _fit(module, tmp_path, ckpt_path=None):
    trainer = pl.Trainer(max_epochs=EPOCHS, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp_path,
                         accelerator="cpu", callbacks=[RequeueOnSignal(dirpath=tmp_path)], **cluster_plugins())
    trainer.fit(module, _DATA, _DATA, ckpt_path=ckpt_path, weights_only=True)
    return trainer


@pytest.fixture
def slurm_task(monkeypatch):
    """This process as the only task of SLURM job 77 (what Lightning's SLURM environment reads)."""
    for key, value in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_ID": "77",
                       "SLURM_JOB_NAME": "train"}.items():
        monkeypatch.setenv(key, value)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR2, signal.SIGTERM)}
    yield
    for sig, handler in previous.items():  # the callback ignores SIGTERM once it has handed the job over
        signal.signal(sig, handler)


def test_on_the_signal_last_ckpt_is_saved_and_the_previous_handler_requeues(tmp_path, slurm_task):
    calls = []

    def submitit_like(signum, frame):  # submitit's handler on rank 0: re-submit, requeue, exit
        calls.append(signum)
        raise SystemExit(-1)

    signal.signal(signal.SIGUSR2, submitit_like)
    with pytest.raises(SystemExit):
        _fit(_Probe(at=5), tmp_path)
    assert calls == [signal.SIGUSR2]
    assert signal.getsignal(signal.SIGUSR2) is submitit_like  # restored for whatever runs after training
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert (saved["global_step"], saved["epoch"]) == (6, 1)  # the end of the batch that got the signal
    resumed = _Probe()
    trainer = _fit(resumed, tmp_path, ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.steps[0] == 6 and trainer.global_step == EPOCHS * BATCHES  # continued, not from step 0


def test_without_a_previous_handler_rank_zero_requeues_with_scontrol(tmp_path, slurm_task, monkeypatch):
    commands = []
    monkeypatch.setattr("advdf.lit.callbacks.subprocess.run",
                        lambda cmd, **kw: commands.append(cmd) or type("Done", (), {"returncode": 0})())
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    with pytest.raises(SystemExit):
        _fit(_Probe(at=2), tmp_path)
    assert commands == [["scontrol", "requeue", "77"]]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 3


def test_a_signal_after_the_last_batch_is_handed_over_when_training_ends(tmp_path, slurm_task):
    calls = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))  # a rank other than 0: returns
    with pytest.raises(SystemExit):
        _fit(_Probe(at="last_val"), tmp_path)
    assert calls == [signal.SIGUSR2]


def test_outside_slurm_the_requeue_callback_leaves_signals_alone(tmp_path):
    module = _Probe()
    _fit(module, tmp_path)
    assert not isinstance(getattr(module.handler_seen, "__self__", None), RequeueOnSignal)
    assert cluster_plugins() == {}


def test_a_requeued_job_keeps_its_wandb_run_and_another_job_gets_its_own(slurm_task, monkeypatch):
    first = slurm_run_id("train#0:seed=0", "sweep")
    assert first and first == slurm_run_id("train#0:seed=0", "sweep")  # a requeued start: same job id
    assert first != slurm_run_id("train#1:seed=1", "sweep")  # another job of the sweep
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    assert first != slurm_run_id("train#0:seed=0", "sweep")
    monkeypatch.delenv("SLURM_NTASKS")
    assert slurm_run_id("train#0:seed=0", "sweep") is None  # not in a SLURM job step
