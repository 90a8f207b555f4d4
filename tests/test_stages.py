"""Staged reproduction (advdf.jobs.stages): waves found from a plan, the dry run, and a real fan-out over SLURM
whose collected tables are byte-identical to the serial run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advdf.errors import ConfigError
from advdf.jobs.plan import run_wave_job
from advdf.jobs.stages import Collector, StagePending, barrier, dry_run_report, plan_stages, staging
from advdf.papers import reproduce
from advdf.papers.reproduce import reproduce_table1
from tests.helpers.scripts import TINY_DATA
from tests.helpers.slurm import local_slurm_cluster, slurm_unavailable_reason

# seed 000's Table 1 on one tiny detector: its base run (wave 0), then its AugMix run fine-tuned from it (wave 1)
PLAN = ["~reproduce.detectors", "+reproduce.detectors={tiny_cnn:[]}", "~reproduce.seed001",
        "+reproduce.seed001={tiny_cnn:[]}", "model.input_size=32", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA]
TABLES = ("table1.md", "table1.csv", "seed001_table1.md", "seed001_table1.csv")


def _tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


def test_a_dry_run_finds_the_waves_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    collector, err = plan_stages(lambda: reproduce_table1("smoke", PLAN))
    assert isinstance(err, StagePending)
    waves = [[j.describe() for j in wave] for wave in collector.waves()]
    assert waves == [["detector tiny_cnn (base)"], ["detector tiny_cnn (augmix)"]]
    assert collector.jobs[0].directory and collector.jobs[1].directory is None  # its identity needs wave 0's weights
    assert not list((tmp_path / "checkpoints").rglob("*.safetensors")) and not (tmp_path / "results").exists()
    text = dry_run_report("reproduce-table1 (smoke)", collector, err)
    rows = [line for line in text.splitlines() if line.startswith("| train |")]
    assert len(rows) == 2 and rows[0].split("|")[2].strip() == "0" and rows[1].split("|")[2].strip() == "1"
    steps = [int(r.split("|")[4]) for r in rows]
    assert all(s > 0 for s in steps) and all(float(r.split("|")[5]) > 0 for r in rows)  # measured, not assumed
    assert "2 training job(s) in 2 wave(s)" in text


def test_barrier_is_inert_outside_a_staged_pass_and_ends_one_with_pending_runs():
    barrier()  # no staged pass: nothing happens
    with staging(Collector()):
        barrier()  # nothing recorded: the plan goes on
    collector = Collector()
    collector.pending["x"] = 0
    collector.jobs.append(object())  # one recorded run
    with staging(collector), pytest.raises(StagePending, match="waits for 1 run"):
        barrier("the attacks")


def test_wave_jobs_and_the_command_line_refuse_bad_input(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no such wave file"):
        run_wave_job(tmp_path / "missing.json", 0)
    wave = tmp_path / "wave.json"
    wave.write_text(json.dumps({"jobs": [{"kind": "detector", "model": "m", "config": "{}"}]}))
    with pytest.raises(ConfigError, match="has 1 job"):
        run_wave_job(wave, 3)
    assert reproduce.main(["table1", "--launcher", "basic", "--data-seeds", "0,1"]) == 2
    assert "does not combine" in capsys.readouterr().err
    assert reproduce.main(["table1", "hydra.launcher.partition=x"]) == 2
    assert "add --launcher" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.slurm
def test_staged_table1_over_slurm_is_byte_identical_to_the_serial_run(tmp_path, monkeypatch):
    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "serial"))
    serial = _tables(reproduce_table1("smoke", PLAN).out_dir)

    staged_root = tmp_path / "staged"
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(staged_root))
    with local_slurm_cluster(tmp_path / "cluster") as cluster:
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        code = reproduce.main(["table1", "--scale", "smoke", "--launcher", "slurm_cpu", *PLAN,
                               *cluster.launcher_overrides(launcher="slurm_cpu", searchpath=None)])
    assert code == 0
    stages = staged_root / "stages" / "table1_smoke"
    waves = sorted(p for p in stages.glob("wave*.json"))
    assert [len(json.loads(p.read_text())["jobs"]) for p in waves] == [1, 1]
    job_logs = sorted(stages.rglob(".submitit/*/*_log.out"))
    assert len(job_logs) == 2, "each wave's job ran as a SLURM job"
    assert _tables(staged_root / "results" / "table1_smoke") == serial


def test_a_failing_wave_stops_with_its_log_named(tmp_path, monkeypatch):
    from advdf.jobs import stages

    script = tmp_path / "stage.py"
    script.write_text("import sys\nprint('job 1 of 2: CheckpointError: weights not finite')\nsys.exit(3)\n")
    monkeypatch.setattr(stages, "STAGE_SCRIPT", script)
    with pytest.raises(ConfigError, match=r"(?s)wave00.json failed \(exit 3\).*launch.log.*weights not finite"):
        stages.launch_wave(tmp_path / "wave00.json", 2, tmp_path / "wave00", "basic", [])
    assert "weights not finite" in (tmp_path / "wave00" / "launch.log").read_text()
