"""The whole slice through the entry points on a tiny synthetic tree: train -> attack -> evaluate."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.scripts import REPO, TINY, run_script, script_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Artifacts dir holding the tiny tree, its crops and a trained tiny detector."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    run_script("train", [*TINY, "trainer.max_epochs=3", "trainer.accelerator=cpu"], artifacts)
    return artifacts


def _detector_dir(artifacts: Path) -> Path:
    """The one tiny_cnn run the fixture trained, found as attack.py finds it."""
    from advdf.jobs.runs import find_run

    return find_run(artifacts / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_base")


def _cache_dirs(artifacts: Path, attack: str) -> list[Path]:
    return sorted((artifacts / "adv_cache").glob(f"*/*/{attack}-*"))


def test_train_writes_checkpoints_and_metrics(trained):
    d = _detector_dir(trained)
    assert (d / "detector.safetensors").is_file() and (d / "last.ckpt").is_file()
    summary = json.loads((d / "train_summary.json").read_text())
    assert {"test/acc", "test/auc", "test/f2f", "test/vid"} <= set(summary["metrics"])
    ckpt = torch.load(d / "last.ckpt", map_location="cpu", weights_only=True)  # safe to load
    assert "state_dict" in ckpt
    assert ckpt["epoch"] == 2  # the latest of the 3 epochs (what a resumed run continues from), not the best
    index = list(csv.DictReader(open(next((trained / "data" / "prepared").glob("*/index.csv")))))
    assert {r["split"] for r in index} == {"train", "val", "test"}


def test_multirun_attack_then_evaluate(trained):
    # The basic launcher, W&B on: each multirun job must be its own W&B run.
    tiny_wandb = [o for o in TINY if not o.startswith("logger=")] + ["logger=wandb"]
    run_script("attack", ["--multirun", *tiny_wandb, "attack=fgsm,bim", "shard_size=16"], trained)
    wandb_runs = list((trained / "logs" / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2, wandb_runs
    (cache,) = _cache_dirs(trained, "bim")
    summary = json.loads((cache / "summary.json").read_text())
    assert summary["linf_max"] <= 16 / 255 + 1e-5
    shard = load_file(str(cache / "shard_00000.safetensors"))
    assert shard["x_adv"].dtype == torch.float32 and shard["x_adv"].shape[1:] == (3, 32, 32)
    assert ((shard["success"] == 1) == (shard["adv_pred"] != shard["label"])).all()

    run_script("evaluate", TINY, trained)  # shard_size 64 here: the sets keep the layout they were written with
    results = next((trained / "results" / "evaluate").rglob("results.csv"))
    rows = list(csv.DictReader(open(results)))
    got = {(r["attack"], r["defense"]): r for r in rows}
    assert {a for a, _ in got} == {"clean", "fgsm", "bim", "mifgsm", "tifgsm", "sim", "pgd", "cw", "deepfool"}
    assert {d for _, d in got} == {"na", "ms", "gs", "as", "jpeg70", "jpeg80", "jpeg90"}
    assert got[("pgd", "na")]["f2f"] == ""  # not generated: no invented number
    assert float(got[("bim", "na")]["f2f"]) == pytest.approx(summary["acc_adv"])
    md = (results.parent / "results.md").read_text()
    assert "| pgd | — |" in md


def test_adaptive_attack_differentiates_through_the_defense(trained):
    run_script("attack", [*TINY, "attack=fgsm", "defense=jpeg70", "defense.adaptive=true"], trained)
    (cache,) = _cache_dirs(trained, "fgsm-through-jpeg")
    key = json.loads((cache / "key.json").read_text())
    assert key["target"]["config"]["quality"] == 70 and key["target"]["config"]["adaptive"] is True
    summary = json.loads((cache / "summary.json").read_text())
    assert summary["linf_max"] <= 16 / 255 + 1e-5
    # BPDA passes the detector's gradient at JPEG(x) back to x: the set differs from the bare detector's
    run_script("attack", [*TINY, "attack=fgsm"], trained)
    (bare,) = [d for d in _cache_dirs(trained, "fgsm") if "through" not in d.name]
    adaptive_x = load_file(str(cache / "shard_00000.safetensors"))["x_adv"]
    assert not torch.equal(adaptive_x, load_file(str(bare / "shard_00000.safetensors"))["x_adv"])


def test_attack_resumes_after_kill(trained):
    overrides = [*TINY, "attack=pgd", "attack.steps=300", "shard_size=2", "batch_size=2", "limit=16"]
    cmd = [sys.executable, str(REPO / "attack.py"), *overrides]
    proc = subprocess.Popen(cmd, cwd=REPO, env=script_env(trained), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            dirs = _cache_dirs(trained, "pgd")
            if dirs and len(list(dirs[0].glob("shard_*.json"))) >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    (cache,) = _cache_dirs(trained, "pgd")
    # finished: the shard and its record (a kill between the two leaves a shard that is recomputed)
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard_*.safetensors")
              if p.with_suffix(".json").is_file()}
    assert 2 <= len(before) < 8 and not (cache / "summary.json").exists()

    out = run_script("attack", overrides, trained)
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard_*.safetensors")}
    assert len(after) == 8 and (cache / "summary.json").is_file()
    assert all(after[name] == mtime for name, mtime in before.items()), "a finished shard was redone"
    assert f"{8 - len(before)}/8 shards to run" in out.stderr + out.stdout
    assert not list(cache.glob(".*.tmp")), "a temp file was left behind"


def _one_line_error(proc: subprocess.CompletedProcess, expected: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if expected in ln]
    assert lines, proc.stderr[-2000:]


def test_bad_input_gives_one_clear_line(trained, tmp_path):
    real = ["model=tiny_cnn", "logger=none", "data=ffpp_real", "data.root=/nowhere/ffpp"]
    _one_line_error(run_script("attack", real, trained, check=False), "data root /nowhere/ffpp does not exist")
    _one_line_error(run_script("attack", [*TINY, "attack.eps=1.5"], trained, check=False), "eps must be in [0, 1]")
    _one_line_error(run_script("attack", [*TINY, "attack.epsilon=0.1"], trained, check=False), "attack.epsilon")
    _one_line_error(run_script("attack", [*TINY, "variant=missing"], trained, check=False), "no trained detector")


def test_corrupt_png_is_named_and_finished_shards_survive(trained, tmp_path):
    prepared = next((trained / "data" / "prepared").glob("*/index.csv")).parent
    copy = tmp_path / "prepared"
    shutil.copytree(prepared, copy)
    rows = [r for r in csv.DictReader(open(copy / "index.csv")) if r["split"] == "test"]
    victim = copy / rows[5]["path"]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    # seed=7: a set of its own (shard_size is a recorded layout, not part of the key)
    overrides = [*TINY, f"data.prepared_dir={copy}", "attack=fgsm", "seed=7", "shard_size=4", "batch_size=4"]
    proc = run_script("attack", overrides, trained, check=False)
    _one_line_error(proc, f"cannot read image {victim}")
    caches = [c for c in _cache_dirs(trained, "fgsm") if json.loads((c / "key.json").read_text())["seed"] == 7]
    assert len(caches) == 1
    # rows[5] sits in shard 1: shard 0, attacked before the bad image was reached, is kept
    assert (caches[0] / "shard_00000.safetensors").is_file()
    assert not (caches[0] / "shard_00001.safetensors").exists()
