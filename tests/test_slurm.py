"""A real 2-job Hydra multirun of attack.py through the submitit SLURM launcher on a localhost cluster."""

from __future__ import annotations

import json

import pytest

from tests.helpers.scripts import TINY, run_script, script_env
from tests.helpers.slurm import local_slurm_cluster, slurm_unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def test_attack_multirun_on_slurm(tmp_path):
    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    artifacts = tmp_path / "artifacts"
    run_script("train", [*TINY, "trainer.max_epochs=1", "trainer.accelerator=cpu"], artifacts)
    sweep = tmp_path / "sweep"
    with local_slurm_cluster(tmp_path / "cluster") as cluster:
        overrides = [
            "--multirun", *cluster.launcher_overrides(launcher="slurm_cpu", searchpath=None),
            f"hydra.sweep.dir={sweep}", *TINY, "attack=fgsm,bim", "limit=16",
        ]
        out = run_script("attack", overrides, artifacts, env=script_env(artifacts, cluster.env), timeout=240,
                         fresh=True)  # submitit pickles the job from the submitting interpreter
    summaries = {p.parent.name.split("-")[0]: json.loads(p.read_text())
                 for p in (artifacts / "adv_cache").rglob("summary.json")}
    assert set(summaries) == {"fgsm", "bim"}, out.stdout[-2000:]
    assert all(s["n"] == 16 for s in summaries.values())
    job_logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert len(job_logs) == 2, "each sweep point ran as its own SLURM job"
