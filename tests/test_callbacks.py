"""Training callbacks from conf/callbacks: what the default builds, what overrides change (and what enters the run
digest), and one-line errors for bad options."""

from __future__ import annotations

import os
import signal

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, Timer

from advdf.errors import ConfigError
from advdf.jobs.common import build_callbacks, check_training_options, checkpoint_callbacks
from advdf.jobs.runs import run_of
from advdf.lit.callbacks import BestCheckpoint
from advdf.utils.entry import CONF_DIR, register_resolvers
from advdf.utils.overrides import check_command_line

TASKS = {"detector": [], "ffm": ["task=ffm"], "generator": ["task=generator"],
         "attribute_classifier": ["task=attribute_classifier"]}


def _train_cfg(overrides: list[str] = ()):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="train"):
        return compose("train", overrides=list(overrides))


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "artifacts"))
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)


def _digest(overrides: list[str] = ()) -> str:
    return run_of(_train_cfg(overrides), identity_digest="the data").digest


def test_the_default_callbacks_write_best_and_last_into_the_run_directory(tmp_path):
    cfg = _train_cfg()
    built = build_callbacks(cfg.callbacks, tmp_path, with_logger=True)
    assert set(built) == {"model_checkpoint", "last_checkpoint", "lr_monitor", "requeue"}  # no budget: no Timer
    best, last = built["model_checkpoint"], built["last_checkpoint"]
    assert isinstance(best, BestCheckpoint) and (best.monitor, best.mode) == ("val/loss", "min")
    assert type(last) is ModelCheckpoint and last.monitor is None and last.save_top_k == 1
    assert {best.dirpath, last.dirpath} == {str(tmp_path)} and (best.filename, last.filename) == ("best", "last")
    assert built["requeue"].path == tmp_path / "last.ckpt" and built["requeue"].signum == signal.SIGUSR2
    assert "lr_monitor" not in build_callbacks(cfg.callbacks, tmp_path, with_logger=False)  # Lightning refuses it
    # the callback states of checkpoints written before callbacks came from config still match (resume restores them)
    old_best = BestCheckpoint(dirpath=tmp_path, filename="best", monitor="val/loss", mode="min",
                              enable_version_counter=False)
    old_last = ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False)
    assert (best.state_key, last.state_key) == (old_best.state_key, old_last.state_key)
    assert [c.state_key for c in checkpoint_callbacks(tmp_path)] == [best.state_key, last.state_key]


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "callbacks").glob("*.yaml")))
def test_every_callbacks_file_builds_its_callback(name, tmp_path):
    chosen = "default" if name == "default" else f"[model_checkpoint,last_checkpoint,{name}]"
    cfg = _train_cfg([f"callbacks={chosen}", *(["callbacks.timer.duration={hours:1}"] if name == "timer" else [])])
    built = build_callbacks(cfg.callbacks, tmp_path)
    assert name in built or name == "default"


def test_overrides_change_the_callbacks(tmp_path):
    cfg = _train_cfg(["callbacks.timer.duration=00:00:10:00", "callbacks.timer.interval=epoch",
                      "callbacks.lr_monitor.logging_interval=step", "callbacks.requeue=null",
                      "callbacks.model_checkpoint.monitor=val/acc", "callbacks.model_checkpoint.mode=max"])
    built = build_callbacks(cfg.callbacks, tmp_path)
    assert "requeue" not in built
    assert isinstance(built["timer"], Timer) and built["timer"].time_remaining() == 600
    assert isinstance(built["lr_monitor"], LearningRateMonitor) and built["lr_monitor"].logging_interval == "step"
    assert (built["model_checkpoint"].monitor, built["model_checkpoint"].mode) == ("val/acc", "max")


@pytest.mark.parametrize("task", TASKS)
def test_default_callbacks_leave_every_run_digest_as_it_was(task):
    """Runs trained before callbacks came from config keep their directory: the default callbacks add nothing to
    the settings a digest covers, so removing the group changes no digest."""
    cfg = _train_cfg(TASKS[task])
    with_group = run_of(cfg, identity_digest="the data")
    with open_dict(cfg):
        del cfg["callbacks"]
    assert "callbacks" not in with_group.settings
    assert run_of(cfg, identity_digest="the data").digest == with_group.digest


def test_only_callbacks_that_change_weights_enter_the_digest():
    base = _digest()
    assert _digest(["callbacks.lr_monitor=null", "callbacks.requeue.signal=USR1"]) == base
    assert _digest(["callbacks.lr_monitor.logging_interval=step", "+callbacks.model_checkpoint.verbose=true"]) == base
    assert _digest(["callbacks.timer.duration=null", "callbacks.timer.interval=epoch"]) == base  # no budget
    assert _digest(["callbacks.model_checkpoint.monitor=val/acc", "callbacks.model_checkpoint.mode=max"]) != base
    assert _digest(["callbacks.model_checkpoint.save_top_k=0"]) != base  # exports the last epoch instead
    assert _digest(["callbacks.timer.duration=00:01:00:00"]) != base


@pytest.mark.parametrize(("override", "expected"), [
    ("callbacks.timer.duration=soon", "callbacks.timer: `Timer(duration='soon')` is not a valid duration"),
    ("callbacks.model_checkpoint.mode=maximum", "callbacks.model_checkpoint: `mode` can be"),
    ("callbacks.requeue.signal=USR9", "callbacks.requeue: signal='USR9' is not a signal name"),
    ("callbacks.model_checkpoint=null", "callbacks.model_checkpoint is required: its best.ckpt"),
    ("callbacks.last_checkpoint=null", "callbacks.last_checkpoint is required: a resumed or requeued job"),
    ("+callbacks.last_checkpoint.dirpath=/elsewhere", "callbacks.last_checkpoint.dirpath is set by the job"),
    ("+callbacks.probe._target_=torch.nn.Identity", "callbacks.probe._target_=torch.nn.Identity is not a Lightning"),
    ("callbacks.lr_monitor._target_=pytorch_lightning.callbacks.Nope", "callbacks.lr_monitor._target_=pytorch_"),
    ("callbacks.last_checkpoint._target_=pytorch_lightning.callbacks.Timer", "must build a ModelCheckpoint"),
])
def test_a_bad_callback_option_is_one_config_error_before_any_work(override, expected):
    with pytest.raises(ConfigError) as err:
        check_training_options(_train_cfg(["model=tiny_cnn", override]))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("override", "expected"), [
    ("callbacks.timer.durations=1", "unknown config key 'callbacks.timer.durations'"),
    ("+callbacks.timer.every=1", "callbacks.timer.every is not an option of pytorch_lightning.callbacks.Timer"),
    ("callbacks=nope", "callbacks"),
])
def test_an_unknown_callback_key_is_refused_on_the_command_line(override, expected):
    with pytest.raises(ConfigError) as err:
        check_command_line(CONF_DIR, "train", [override])
    assert expected in str(err.value) and "\n" not in str(err.value)
