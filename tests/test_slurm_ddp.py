"""DDP and requeue under SLURM: hydra/launcher=slurm_ddp runs one task (one rank) per device; on the local cluster a
two-rank CPU job trains into one output directory, one W&B run and one model, and when it gets SLURM's pre-timeout
signal it saves last.ckpt, is requeued and resumes from it. A job whose tasks are not its trainer's devices stops
with one line.

One job serves both cluster tests (SLURM jobs start slowly): DDP is what makes the requeue hard (the ranks must
agree on the batch to save at), and a requeued job must still be one run."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from advdf.errors import ConfigError
from advdf.jobs.common import check_slurm_tasks
from advdf.jobs.runs import list_runs
from advdf.utils.entry import CONF_DIR, register_resolvers
from tests.helpers.scripts import REPO, TINY_DATA, script_env
from tests.helpers.slurm import local_slurm_cluster, slurm_unavailable_reason


def _train_cfg(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="train"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_slurm_ddp_asks_for_one_task_per_device():
    cfg = _train_cfg(["hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.devices=4", "+trainer.num_nodes=2"])
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)
    assert launcher.max_num_timeout == 3 and launcher.signal_delay_s == 120  # from slurm.yaml
    assert _train_cfg(["hydra/launcher=slurm_ddp"]).hydra.launcher.nodes == 1  # trainer.num_nodes unset


@pytest.mark.parametrize(("env", "expected"), [
    ({"SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1"}, "trainer.devices=2 but this SLURM job runs 1 tasks per node"),
    ({"SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2"}, "trainer.num_nodes=1 but this SLURM job runs 2 node(s)"),
])
def test_a_job_whose_tasks_are_not_the_trainers_devices_is_one_config_error(monkeypatch, env, expected):
    monkeypatch.setenv("ADVDF_ARTIFACTS", "/nonexistent")
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    cfg = _train_cfg(["trainer=ddp"])
    check_slurm_tasks(cfg)  # outside SLURM nothing to check
    for key, value in {"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train", **env}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="use hydra/launcher=slurm_ddp") as err:
        check_slurm_tasks(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("SLURM_NNODES", "1")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    check_slurm_tasks(cfg)  # what slurm_ddp asks for with trainer=ddp


EPOCHS = 24  # a few seconds of training after the first last.ckpt, even on a fast machine: the signal lands mid-run


@pytest.fixture(scope="module")
def requeued_ddp_job(tmp_path_factory) -> SimpleNamespace:
    """A 2-rank DDP training job through hydra/launcher=slurm_ddp, sent USR2 (what SLURM sends signal_delay_s before
    the time limit, to every task) once it has written last.ckpt; what it left behind once the sweep returned."""
    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("slurm_ddp")
    artifacts, sweep = tmp / "artifacts", tmp / "sweep"
    prefix = artifacts / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_ddp"
    with local_slurm_cluster(tmp / "cluster") as cluster, (tmp / "submit.log").open("w") as out:
        overrides = [
            "--multirun", *cluster.launcher_overrides(launcher="slurm_ddp", searchpath=None),
            "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            f"hydra.sweep.dir={sweep}", "model=tiny_cnn", *TINY_DATA, "trainer=ddp", "trainer.accelerator=cpu",
            f"trainer.max_epochs={EPOCHS}", "trainer.enable_progress_bar=false",
            "variant=ddp",  # logger: the default, W&B (offline) and CSV
        ]
        env = script_env(artifacts, {**cluster.env, "MASTER_ADDR": "127.0.0.1"})  # the node answers there
        # submitit pickles the job from the submitting interpreter: a fresh one, in the background
        submit = subprocess.Popen([sys.executable, str(REPO / "train.py"), *overrides], cwd=REPO, stdout=out,
                                  stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 180
            while not list(prefix.parent.glob(f"{prefix.name}-*/last.ckpt")):
                if submit.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"no last.ckpt while the job trained:\n{(tmp / 'submit.log').read_text()[-3000:]}")
                time.sleep(0.1)
            (job,) = subprocess.run(["squeue", "--noheader", "--format=%i"], env=cluster.env, capture_output=True,
                                    text=True, check=True, timeout=30).stdout.split()
            subprocess.run(["scancel", "--signal=USR2", job], env=cluster.env, check=True, timeout=30)
            returncode = submit.wait(timeout=240)
        finally:
            if submit.poll() is None:
                submit.kill()
        state = subprocess.run(["scontrol", "show", "job", "--oneliner", job], env=cluster.env,
                               capture_output=True, text=True, check=False, timeout=30).stdout
    (job_dir,) = [p for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    logs = {rank: "".join((job_dir / f"{job_dir.name}_{rank}_log.{kind}").read_text() for kind in ("out", "err"))
            for rank in (0, 1)}
    return SimpleNamespace(returncode=returncode, submit_log=(tmp / "submit.log").read_text(), state=state,
                           logs=logs, job_dir=job_dir, sweep=sweep, artifacts=artifacts, runs=list_runs(prefix))


@pytest.mark.slow
@pytest.mark.slurm
def test_ddp_on_slurm_trains_one_run_with_one_rank_per_task(requeued_ddp_job):
    job = requeued_ddp_job
    assert job.returncode == 0, job.submit_log[-3000:]
    assert "#SBATCH --ntasks-per-node=2" in (job.job_dir / f"{job.job_dir.name}_submission.sh").read_text()
    for rank, log in job.logs.items():  # each SLURM task was one rank of one process group, in both starts
        assert log.count(f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2") == 2, log[-3000:]
    # one Hydra output directory, one model, one W&B run (rank 0's, continued by the requeued start)
    assert [p.name for p in job.sweep.iterdir() if p.is_dir() and not p.name.startswith(".")] == ["0"]
    assert (job.sweep / "0" / ".hydra" / "config.yaml").is_file()
    (run,) = job.runs
    assert [p.name for p in run.glob("*.safetensors")] == ["detector.safetensors"]
    wandb_runs = sorted((job.artifacts / "logs" / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and len({p.name.rsplit("-", 1)[1] for p in wandb_runs}) == 1, wandb_runs


@pytest.mark.slow
@pytest.mark.slurm
def test_a_signalled_job_saves_last_ckpt_is_requeued_and_resumes_from_it(requeued_ddp_job):
    job = requeued_ddp_job
    assert job.returncode == 0, job.submit_log[-3000:]
    assert "Restarts=1 " in job.state, job.state
    (run,) = job.runs
    log = job.logs[0]
    saved = re.search(r"saved (\S+) \(epoch (\d+), step (\d+)\) for the requeued job", log)
    assert saved and saved.group(1) == str(run / "last.ckpt"), log[-3000:]
    assert "Requeued job" in log[saved.end():]  # submitit's handler took over on rank 0
    assert log.index(f"resuming from {run / 'last.ckpt'}") > saved.end()  # the requeued start read it
    # each start's CSV log: the second continues from the saved epoch and step, not from epoch 0, step 0
    csv_logs = sorted((job.artifacts / "logs" / "csv").glob("version_*/metrics.csv"))
    starts = [list(csv.DictReader(p.open())) for p in csv_logs]
    epoch, step = int(saved.group(2)), int(saved.group(3))
    assert len(starts) == 2 and epoch >= 1 and step >= 1, saved.group(0)
    assert max(int(r["step"]) for r in starts[0]) <= step <= min(int(r["step"]) for r in starts[1])
    assert min(int(r["epoch"]) for r in starts[1] if r["epoch"]) >= epoch
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["epochs"] == EPOCHS and summary["run"] in run.name
    assert not list(run.glob("hpc_ckpt*"))  # Lightning's own auto-requeue stayed off
