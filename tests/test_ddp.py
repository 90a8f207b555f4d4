"""DDP training on two CPU processes (gloo): one output directory, one run directory, one W&B run, one exported
detector."""

from __future__ import annotations

import pytest

from advdf.jobs.runs import list_runs
from tests.helpers.scripts import TINY_DATA, run_script

pytestmark = [pytest.mark.slow, pytest.mark.ddp]


def test_ddp_two_cpu_processes(tmp_path):
    artifacts = tmp_path / "artifacts"
    run_dir = tmp_path / "run"
    overrides = [
        "model=tiny_cnn", *TINY_DATA, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.max_epochs=1", "logger=wandb", "variant=ddp", f"hydra.run.dir={run_dir}",
    ]
    out = run_script("train", overrides, artifacts, timeout=400, fresh=True)  # DDP relaunches itself from sys.argv
    log = out.stdout + out.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in log
    # Hydra wrote one output dir: rank 1 reused rank 0's instead of creating its own.
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert len(list((artifacts / "logs").rglob(".hydra"))) == 0
    wandb_runs = list((artifacts / "logs" / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1, wandb_runs
    # both ranks computed the same run directory (each prepares the data, under its lock, then names the run)
    (detector_dir,) = list_runs(artifacts / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_ddp")
    assert (detector_dir / "detector.safetensors").is_file()
    assert len(list((artifacts / "data" / "prepared").glob("*/index.csv"))) == 1
