"""The eps sweep of attack.py: one cached set per eps, the robust-accuracy curve (CSV, PNG, loggers), clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from advdf.errors import ConfigError
from advdf.jobs.curves import SweepPoint, parse_eps_sweep, sweep_attack_config, write_curve
from advdf.jobs.runs import find_run
from tests.helpers.scripts import TINY, run_script

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# BIM is deterministic; with these steps the tiny detector goes from untouched at 4/255 to fully fooled at 0.2
SWEEP = ["attack=bim", "attack.alpha=0.02", "attack.steps=10", "eps_sweep=[4/255,0.12,0.2]"]


# --- the option and the curve files (no subprocess) ----------------------------------------------------------
def test_parse_accepts_fractions_and_numbers_and_sorts():
    points = parse_eps_sweep(OmegaConf.create({"s": ["8/255", 0.01, "1/255", 0]}).s)
    assert [p.eps for p in points] == pytest.approx([0.0, 1 / 255, 0.01, 8 / 255])
    assert [p.label for p in points] == ["0", "1/255", "0.01", "8/255"]
    assert parse_eps_sweep(None) is None


@pytest.mark.parametrize(("value", "message"), [
    ("4/255", "eps_sweep must be a list"),
    (0.1, "eps_sweep must be a list"),
    ([], "eps_sweep is an empty list"),
    (["1/255", 2], "eps_sweep entries must be in [0, 1]"),
    ([-0.1], "eps_sweep entries must be in [0, 1]"),
    (["abc"], "eps_sweep entry must be a number or a fraction"),
    ([[0.1]], "eps_sweep entries must be numbers or fractions"),
    ([True], "eps_sweep entries must be numbers or fractions"),
    (["4/255", 4 / 255], "twice"),
])
def test_parse_rejects_bad_sweeps(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_eps_sweep(OmegaConf.create({"s": value}).s if isinstance(value, list) else value)


def test_sweep_config_sets_eps_as_written_and_leaves_the_original():
    attack = OmegaConf.create({"_target_": "advdf.attacks.pgd.PGD", "name": "pgd", "eps": "16/255", "steps": 20})
    out = sweep_attack_config(attack, SweepPoint(4 / 255, "4/255"))
    assert out.eps == "4/255" and out.steps == 20 and attack.eps == "16/255"


def test_write_curve_puts_clean_first_and_writes_csv_and_png(tmp_path):
    cfg = OmegaConf.create({"paths": {"results_dir": str(tmp_path)}, "data": {"name": "d"}, "model": {"name": "m"},
                            "checkpoint": str(tmp_path / "ckpt" / "m_32px_base" / "detector.safetensors"),
                            "split": "test"})
    points = [SweepPoint(2 / 255, "2/255"), SweepPoint(8 / 255, "8/255")]
    summaries = [{"n": 10, "acc_clean": 0.9, "acc_adv": acc, "success_rate": 1 - acc, "asr": 0.0, "linf_max": p.eps,
                  "l2_mean": 1.0, "grad_calls_mean": 10.0, "queries_mean": 0.0, "time_s": 1.0, "shards_run": 1,
                  "cache_dir": "x"} for p, acc in zip(points, (0.6, 0.1), strict=True)]
    curve = write_curve(cfg, "pgd", points, summaries)
    base = tmp_path / "curves" / "d" / "m_32px_base"
    assert curve["csv"] == str(base / "pgd.csv") and curve["png"] == str(base / "pgd.png")
    rows = list(csv.DictReader(open(base / "pgd.csv")))
    assert [(r["eps_label"], float(r["robust_acc"])) for r in rows] == [("clean", 0.9), ("2/255", 0.6), ("8/255", 0.1)]
    assert float(rows[0]["eps"]) == 0 and rows[0]["kind"] == "clean" and rows[1]["kind"] == "attack"
    assert (base / "pgd.png").read_bytes()[:8] == PNG_MAGIC
    assert not list(base.glob(".*tmp*")), "a temp file was left behind"


# --- end to end through attack.py ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Artifacts dir holding the tiny tree, its crops and a trained tiny detector."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    run_script("train", [*TINY, "trainer.max_epochs=3", "trainer.accelerator=cpu"], artifacts)
    return artifacts


def _bim_caches(artifacts: Path) -> list[Path]:
    return sorted((artifacts / "adv_cache").glob("*/*/bim-*"))


@pytest.mark.slow
def test_sweep_writes_the_curve_logs_it_and_reruns_from_the_cache(trained):
    tiny_many = [o for o in TINY if not o.startswith("logger=")] + ["logger=many"]
    run_script("attack", [*tiny_many, *SWEEP], trained)
    run = find_run(trained / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_base")
    curves = trained / "results" / "curves" / "ffpp_synthetic" / run.name
    rows = list(csv.DictReader(open(curves / "bim.csv")))
    assert [r["eps_label"] for r in rows] == ["clean", "4/255", "0.12", "0.2"]
    assert [float(r["eps"]) for r in rows] == pytest.approx([0, 4 / 255, 0.12, 0.2])
    acc = [float(r["robust_acc"]) for r in rows]
    assert all(0 <= a <= 1 for a in acc)
    assert all(a >= b for a, b in zip(acc, acc[1:], strict=False)), acc  # BIM: non-increasing in eps
    assert acc[-1] < acc[0], acc  # and the largest budget does remove accuracy
    assert all(float(r["linf_max"]) <= float(r["eps"]) + 1e-5 for r in rows[1:])
    assert (curves / "bim.png").read_bytes()[:8] == PNG_MAGIC

    caches = _bim_caches(trained)
    assert len(caches) == 3 and all((c / "summary.json").is_file() for c in caches)
    assert sorted(r["cache_dir"] for r in rows[1:]) == sorted(str(c) for c in caches)

    # the loggers: the points as metrics (CSV logger), the plot, table and image in the offline W&B run
    metrics = list(csv.DictReader(open(next((trained / "logs" / "csv").rglob("metrics.csv")))))
    assert [float(m["curve/bim/robust_acc"]) for m in metrics] == pytest.approx(acc)
    (run,) = (trained / "logs" / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    assert list(media.rglob("*.png")) and list(media.rglob("*.table.json"))

    shards = {p: p.stat().st_mtime_ns for c in caches for p in c.glob("shard_*.safetensors")}
    out = run_script("attack", [*TINY, *SWEEP], trained)
    log = out.stdout + out.stderr
    assert log.count("(cached)") == 3 and "shards to run" not in log
    assert _bim_caches(trained) == caches
    assert {p: p.stat().st_mtime_ns for p in shards} == shards, "a cached set was recomputed"
    assert [float(r["robust_acc"]) for r in csv.DictReader(open(curves / "bim.csv"))] == acc


@pytest.mark.slow
def test_bad_sweep_is_one_clear_line_before_any_work(tmp_path):
    # A fresh artifacts dir: no data, no detector. The sweep is checked before either is looked for (the other
    # bad values are covered in-process by test_parse_rejects_bad_sweeps).
    proc = run_script("attack", [*TINY, "attack=bim", "eps_sweep=[1/255,2]"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert errors[0] == "error: eps_sweep entries must be in [0, 1] (pixel scale, e.g. 16/255), got 2"
    assert not (tmp_path / "data").exists() and not (tmp_path / "adv_cache").exists()
