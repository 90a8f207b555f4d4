"""Every trained run in a directory of its own, named by what determines its weights: a seed sweep gets one run per
seed, a rerun resumes its own run, another data root with the same name trains its own, a directory recording other
settings is refused, and attack.py finds the only run or names the runs to choose from."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from advdf.data.synthetic import generate_synthetic_ffpp
from advdf.errors import ConfigError
from advdf.jobs.runs import RUN_FILE, list_runs
from tests.helpers.scripts import TINY, run_script

EPOCHS = ["trainer.max_epochs=2", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]


def _runs(artifacts: Path) -> list[Path]:
    return list_runs(artifacts / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_base")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings(run: Path) -> dict:
    return json.loads((run / RUN_FILE).read_text())["settings"]


def _one_error_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert all(e in line for e in expected), line
    return line


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """Artifacts of ``train.py -m seed=0,1`` (Hydra's basic launcher: both jobs in one process)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    run_script("train", ["--multirun", *TINY, *EPOCHS, "seed=0,1", f"hydra.sweep.dir={artifacts / 'sweep'}"],
               artifacts)
    return artifacts


@pytest.mark.slow
def test_a_seed_sweep_trains_one_run_per_seed(swept):
    runs = _runs(swept)
    assert len(runs) == 2
    assert sorted(_settings(r)["seed"] for r in runs) == [0, 1]
    assert _sha(runs[0] / "detector.safetensors") != _sha(runs[1] / "detector.safetensors")
    for run in runs:
        summary = json.loads((run / "train_summary.json").read_text())
        assert summary["epochs"] == 2 and run.name.endswith(f"-{summary['run']}")
        assert summary["config"]["trainer"]["default_root_dir"] == str(run)


@pytest.mark.slow
def test_a_rerun_with_the_same_settings_resumes_its_own_run(swept):
    runs = _runs(swept)
    (seed0,) = [r for r in runs if _settings(r)["seed"] == 0]
    weights = _sha(seed0 / "detector.safetensors")
    out = run_script("train", [*TINY, *EPOCHS, "seed=0"], swept)
    assert f"resuming from {seed0 / 'last.ckpt'}" in out.stdout + out.stderr
    assert _runs(swept) == runs and _sha(seed0 / "detector.safetensors") == weights


@pytest.mark.slow
def test_attack_names_the_runs_to_choose_from_and_takes_the_chosen_one(swept):
    runs = _runs(swept)
    attack = [*TINY, "attack=fgsm", "limit=4"]
    line = _one_error_line(run_script("attack", attack, swept, check=False), "2 trained detector runs",
                           runs[0].name, runs[1].name, "paths.detector_run=<digest>", "checkpoint=")
    assert "seed=0" in line and "seed=1" in line  # what tells them apart
    digest = runs[1].name.rsplit("-", 1)[1]
    run_script("attack", [*attack, f"paths.detector_run='{digest}'"], swept)
    assert list((swept / "adv_cache" / "ffpp_synthetic" / runs[1].name).glob("fgsm-*"))
    run_script("attack", [*attack, f"checkpoint={runs[0] / 'detector.safetensors'}"], swept)
    assert list((swept / "adv_cache" / "ffpp_synthetic" / runs[0].name).glob("fgsm-*"))


@pytest.mark.slow
def test_another_data_root_with_the_same_name_trains_a_run_of_its_own(tmp_path):
    trees = {name: generate_synthetic_ffpp(tmp_path / name, num_videos=8, num_frames=6, seed=seed)
             for name, seed in (("rootA", 0), ("rootB", 1))}
    artifacts = tmp_path / "artifacts"

    def train(root: Path) -> tuple[Path, str]:
        out = run_script("train", [*TINY, *EPOCHS, "data.synthetic=null", f"data.root={root}"], artifacts)
        (run,) = [r for r in _runs(artifacts) if f"run directory: {r}" in out.stdout + out.stderr]
        return run, out.stdout + out.stderr

    run_a, log_a = train(trees["rootA"])
    assert "resuming from" not in log_a
    # the only run under the prefix: attack.py finds it
    run_script("attack", [*TINY, "data.synthetic=null", f"data.root={trees['rootA']}", "attack=fgsm", "limit=4"],
               artifacts)
    run_b, log_b = train(trees["rootB"])
    assert run_b != run_a and "resuming from" not in log_b
    assert json.loads((run_b / "train_summary.json").read_text())["epochs"] == 2  # trained, not resumed
    assert _settings(run_a)["data"]["identity"] != _settings(run_b)["data"]["identity"]

    shutil.move(trees["rootA"], tmp_path / "mounted" / "elsewhere")  # the same tree at another path
    run_again, log_again = train(tmp_path / "mounted" / "elsewhere")
    assert run_again == run_a and f"resuming from {run_a / 'last.ckpt'}" in log_again


@pytest.mark.slow
def test_ensure_trained_reuses_its_run_and_refuses_one_recording_other_settings(tmp_path, monkeypatch):
    from advdf.jobs.plan import compose_config, ensure_trained
    from advdf.jobs.train import train_job

    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [*TINY, *EPOCHS]
    first = ensure_trained(overrides)
    assert not first.reused and first.weights.is_file() and first.directory in _runs(tmp_path)
    again = ensure_trained(overrides)
    assert again.reused and again.directory == first.directory and again.metrics == first.metrics
    assert again.override() == f"checkpoint='{first.directory / 'detector.safetensors'}'"

    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")  # the artifacts directory moved
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path.parent / f"{tmp_path.name}-moved"))
    moved = ensure_trained(overrides)
    assert moved.reused and moved.directory.relative_to(tmp_path.parent / f"{tmp_path.name}-moved") == \
        first.directory.relative_to(tmp_path)
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))

    record = json.loads((first.directory / RUN_FILE).read_text())
    record["settings"]["seed"] = 7
    (first.directory / RUN_FILE).write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=r"records a detector trained with other settings \(seed\)"):
        ensure_trained(overrides)
    with pytest.raises(ConfigError, match="neither reused nor resumed"):
        train_job(compose_config("train", overrides))


@pytest.mark.slow
def test_a_run_reused_with_another_test_subset_is_tested_on_that_subset(tmp_path, monkeypatch):
    """The test subset changes no weight, so it is not in the digest (reproduce targets share detectors across test
    subsets); a reused run is tested on the asking config's subset, with a fresh run's metrics."""
    from advdf.jobs.plan import ensure_trained

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "fresh"))
    fresh = ensure_trained([*TINY, *EPOCHS, "data.test_per_class=4"])
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "shared"))
    first = ensure_trained([*TINY, *EPOCHS])
    reused = ensure_trained([*TINY, *EPOCHS, "data.test_per_class=4"])
    assert reused.reused and reused.directory == first.directory and first.directory.name == fresh.directory.name
    assert _sha(first.weights) == _sha(fresh.weights)  # same settings, same weights, in any artifacts directory
    assert reused.metrics == fresh.metrics != first.metrics
    assert ensure_trained([*TINY, *EPOCHS, "data.test_per_class=4"]).metrics == fresh.metrics  # remembered


@pytest.mark.slow
@pytest.mark.parametrize("script, override, expected", [
    ("train", "trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer of at least 1 epoch"),
    ("train", "data.batch_size=0", "data.batch_size=0: must be an integer of at least 1 frame per batch"),
    ("attack", "data.batch_size=-2", "data.batch_size=-2: must be an integer of at least 1"),
])
def test_impossible_options_stop_with_one_line_before_any_work(tmp_path, script, override, expected):
    _one_error_line(run_script(script, [*TINY, override], tmp_path, check=False), expected)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be an integer of at least 1 epoch"),
    ("+trainer.max_steps=0", "trainer.max_steps=0: must be an integer of at least 1 step (-1 also allowed)"),
    ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0"),
    ("trainer.devices=0", "trainer.devices=0"),
    ("data.num_workers=-1", "data.num_workers=-1: must be an integer of at least 0"),
    ("data.crop_size=0", "data.crop_size=0: must be an integer of at least 1 pixel"),
    ("data.frames_per_video_fake=0", "data.frames_per_video_fake=0"),
    ("data.test_per_class=0", "data.test_per_class=0"),
])
def test_impossible_training_options_are_config_errors(tmp_path, monkeypatch, override, expected):
    from advdf.jobs.common import check_training_options
    from advdf.jobs.plan import compose_config

    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_training_options(compose_config("train", [*TINY, override]))


@pytest.mark.parametrize("task, override, expected", [
    ("denoiser", "denoiser_data.batch_size=0", "denoiser_data.batch_size=0"),
    ("denoiser", "denoiser_data.val_fraction=1.0", "denoiser_data.val_fraction=1.0"),
    ("adv_detector", "adv_data.batch_size=0", "adv_data.batch_size=0"),
])
def test_impossible_options_of_other_tasks_are_config_errors(tmp_path, monkeypatch, task, override, expected):
    from advdf.jobs.common import check_training_options
    from advdf.jobs.plan import compose_config

    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    with pytest.raises(ConfigError, match=expected):
        check_training_options(compose_config("train", [*TINY, f"task={task}", override]))
