"""End-to-end check of advdf's SLURM launcher configs on a local cluster.

Starts a throwaway single-node SLURM cluster (``tests/helpers/slurm.py``),
runs a two-point Hydra sweep of ``tests/helpers/hydra_echo_app.py`` through
``hydra/launcher=slurm_cpu`` (which extends ``conf/hydra/launcher/slurm.yaml``)
and checks that each point ran as its own SLURM job.

Needs root and the SLURM/MUNGE packages (``.ci/slurm-install.sh``); skipped
otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.helpers import hydra_echo_app
from tests.helpers.slurm import CONF_DIR, local_slurm_cluster, slurm_unavailable_reason

ECHO_APP = Path(hydra_echo_app.__file__)


@pytest.fixture(name="require_slurm")
def fixture_require_slurm() -> None:
    """Skips the test when a local SLURM cluster cannot be started here."""
    reason = slurm_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.usefixtures("require_slurm")
def test_submitit_sweep_runs_as_slurm_jobs(tmp_path: Path) -> None:
    """A ``--multirun`` with ``hydra/launcher=slurm_cpu`` runs one job per point."""
    sweep_dir = tmp_path / "sweep"
    with local_slurm_cluster(tmp_path / "cluster") as cluster:
        cmd = [
            sys.executable,
            str(ECHO_APP),
            "--multirun",
            *cluster.launcher_overrides(launcher="slurm_cpu"),
            f"hydra.sweep.dir={sweep_dir}",
            "value=1,2",
        ]
        proc = subprocess.run(
            cmd,
            env=cluster.env,
            # Not the repo root: the sweep must not depend on the caller's cwd.
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=50,
        )
        assert proc.returncode == 0, (
            f"sweep failed ({proc.returncode})\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}\njob logs:\n{_job_logs(sweep_dir)}"
        )

        results = {}
        for job_num in (0, 1):
            result_path = sweep_dir / str(job_num) / hydra_echo_app.RESULT_FILE
            assert result_path.is_file(), f"missing {result_path}\n{_job_logs(sweep_dir)}"
            result = json.loads(result_path.read_text())
            results[result["value"]] = result
        assert set(results) == {1, 2}

        job_ids = {result["env"]["SLURM_JOB_ID"] for result in results.values()}
        assert None not in job_ids and len(job_ids) == 2, results
        for result in results.values():
            env = result["env"]
            assert env["SUBMITIT_EXECUTOR"] == "slurm"
            assert env["SLURM_JOB_PARTITION"] == cluster.partition
            # Hydra's submitit launcher submits a sweep as one job array.
            assert env["SLURM_ARRAY_TASK_ID"] is not None
            assert cluster.job_state(env["SLURM_JOB_ID"]) == "COMPLETED"
        daemon_pids = list(cluster.pids.values())

    for pid in daemon_pids:
        assert not _is_running(pid), f"daemon {pid} still running after teardown"


def _is_running(pid: int) -> bool:
    """Whether a process with this PID exists (children are reaped by Popen)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _job_logs(sweep_dir: Path) -> str:
    """Contents of submitit's per-job stdout/stderr files, for failure messages."""
    logs = sorted((sweep_dir / ".submitit").glob("*/*.out")) + sorted(
        (sweep_dir / ".submitit").glob("*/*.err")
    )
    return "\n".join(f"--- {log} ---\n{log.read_text(errors='replace')}" for log in logs)


@pytest.mark.parametrize(
    ("launcher", "expected"),
    [
        ("slurm", {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32, "partition": "gpu"}),
        ("slurm_cpu", {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1, "partition": "gpu"}),
    ],
)
def test_launcher_configs_compose(
    launcher: str, expected: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``conf/hydra/launcher/slurm*.yaml`` extend submitit_slurm and resolve (no SLURM needed)."""
    monkeypatch.delenv("ADVDF_SLURM_PARTITION", raising=False)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="echo",
            overrides=[f"hydra/launcher={launcher}"],
            return_hydra_config=True,
        )
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("submitit_launcher.SlurmLauncher")
    for key, value in expected.items():
        assert launcher_cfg[key] == value, key
    assert launcher_cfg.timeout_min == 240
    assert launcher_cfg.array_parallelism == 16

    monkeypatch.setenv("ADVDF_SLURM_PARTITION", "a100")
    assert launcher_cfg.partition == "a100"
