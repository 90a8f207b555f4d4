"""make reproduce-table1 on tiny settings: every cell of ours comes from a real training run, reruns train nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from advdf.errors import ConfigError
from advdf.jobs.runs import find_run
from advdf.models.checkpoint import file_digest
from advdf.papers.jin2025.layout import TABLE2_DETECTORS
from advdf.papers.reproduce import reproduce_table1
from tests.helpers.scripts import TINY_DATA

pytestmark = pytest.mark.slow
TINY_PLAN = ["~reproduce.detectors", "+reproduce.detectors={tiny_cnn:[]}", "~reproduce.seed001",
             "+reproduce.seed001={tiny_cnn:[],mesonet:[]}", "+reproduce.input_size={mesonet:32}", "model.input_size=32", "trainer.max_epochs=2",
             "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA]


def _cells(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def test_table1_cells_come_from_training_runs_and_rerun_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = reproduce_table1("smoke", TINY_PLAN)
    out = result.out_dir
    runs = {v: find_run(tmp_path / "checkpoints" / "ffpp_synthetic" / f"tiny_cnn_32px_{v}") for v in ("base", "augmix")}
    summaries = {v: json.loads((run / "train_summary.json").read_text()) for v, run in runs.items()}
    # the AugMix run trained with the AugMix data and loss
    assert summaries["augmix"]["config"]["data"]["augmix"]["_target_"].endswith("AugMixViews")
    assert summaries["base"]["config"]["data"]["augmix"] is None
    # the smoke plan fine-tunes the AugMix run from the base run's weights (reproduce.augmix_from_base)
    recorded = {v: json.loads((run / "run.json").read_text())["settings"] for v, run in runs.items()}
    assert recorded["base"]["model"]["init"] is None
    assert recorded["augmix"]["model"]["init"] == file_digest(runs["base"] / "detector.safetensors")
    assert recorded["augmix"]["trainer"]["max_epochs"] == 3 and recorded["base"]["trainer"]["max_epochs"] == 2

    table1 = _cells(out / "table1.csv")
    ours = {(c["detector"], c["variant"]): c["ours"] for c in table1 if c["ours"]}
    # nothing else was computed; seed 001's extra detector (mesonet) stays out of seed 000's table
    assert set(ours) == {("tiny_cnn", "base"), ("tiny_cnn", "augmix")}
    for variant, summary in summaries.items():
        assert float(ours["tiny_cnn", variant]) == pytest.approx(summary["metrics"]["test/acc"], abs=1e-5)
    assert {c["detector"] for c in table1} >= set(TABLE2_DETECTORS)
    assert all(c["paper"] for c in table1 if c["detector"] in TABLE2_DETECTORS)

    seed001_cells = _cells(out / "seed001_table1.csv")
    assert {c["detector"] for c in seed001_cells if c["ours"]} == {"tiny_cnn", "mesonet"}
    seed001 = {c["metric"]: c["ours"] for c in seed001_cells if c["detector"] == "tiny_cnn"}
    assert float(seed001["fake_f2f"]) == pytest.approx(summaries["base"]["metrics"]["test/f2f_fake"], abs=1e-5)
    assert (out / "table1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = result.text  # the report the command line prints
    assert "| xception | — / 1.000 |" in printed and "| mesonet | — / 0.774 | — / 0.807 |" in printed
    # the plan's paper-scale-only detectors print so in seed 000's table and stay out of seed 001's
    assert "| vgg16 | paper scale only / 0.955 | paper scale only / 0.960 |" in printed
    assert {c["detector"] for c in seed001_cells} == {"xception", "efficientnet_b4_st", "mesonet", "tiny_cnn"}

    assert {r["run"] for r in json.loads((out / "report.json").read_text())["runs"].values()} >= {
        str(run) for run in runs.values()}
    stamps = {v: (run / "detector.safetensors").stat().st_mtime_ns for v, run in runs.items()}
    reproduce_table1("smoke", TINY_PLAN)
    report = json.loads((out / "report.json").read_text())
    assert all(r["reused"] for r in report["runs"].values())
    assert {v: (run / "detector.safetensors").stat().st_mtime_ns for v, run in runs.items()} == stamps
    assert _cells(out / "table1.csv") == table1


def test_unknown_detector_or_variant_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(ConfigError, match="no_such_net"):
        reproduce_table1("smoke", ["+reproduce.detectors.no_such_net=[]"])
    with pytest.raises(ConfigError, match="cutmix"):
        reproduce_table1("smoke", ["reproduce.variants=[base,cutmix]"])
    assert not (tmp_path / "artifacts" / "checkpoints").exists()
