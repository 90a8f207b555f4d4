"""make reproduce-ffm on tiny settings: every cell comes from trained models and checked perturbations; a rerun
trains and measures nothing."""

from __future__ import annotations

import json

import pytest

from advdf.errors import ConfigError
from advdf.papers.rong_ffm.reproduce import reproduce_ffm
from tests.helpers.scripts import TINY_DATA

pytestmark = pytest.mark.slow
TINY_PLAN = [
    "reproduce.datasets=[Deepfakes,Face2Face]", "reproduce.training.base=['trainer.max_epochs=2']",
    "reproduce.training.finetune=['trainer.max_epochs=1']", "~reproduce.transfer",
    "+reproduce.transfer={forensic_transfer:{task:ffm,overrides:['trainer.max_epochs=1']}}",
    "reproduce.attacks.iap_seg=['alpha=1000','steps=2']", "reproduce.attacks.uap_overfire=['steps=3']",
    "reproduce.iap_iterations=[2]", "reproduce.per_class=6", "model.input_size=32", "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA,
]


def test_ffm_tables_come_from_trained_models_and_rerun_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = reproduce_ffm("smoke", TINY_PLAN)
    out = result.out_dir
    report = json.loads((out / "report.json").read_text())
    runs = report["runs"]
    assert set(runs) == {"classnseg/Face2Face", "classnseg/Deepfakes", "forensic_transfer/Face2Face",
                         "forensic_transfer/Deepfakes"}
    assert not any(r["reused"] for r in runs.values())
    # the Deepfakes model is fine-tuned from the Face2Face one: its run records the starting weights
    tuned = json.loads((tmp_path / runs["classnseg/Deepfakes"]["run"] / "run.json").read_text())
    assert tuned["settings"]["model"]["init"] is not None
    results = report["results"]
    for d in ("Deepfakes", "Face2Face"):
        # every cell is measured on the plan's balanced frames (at most 6 + 6); IAP-seg on the fake half only
        n = results["clean"][d]["n_correct"]
        assert 0 < n <= 12 and results["seg"][d]["n_correct_before"] == n // 2 and n % 2 == 0
        assert results["iap"][f"{d}/2"]["n_correct"] == n and results["urn"][d]["n_correct"] == n
        assert results["iap"][f"{d}/2"]["rmse"] <= 2.5 + 1e-4  # eps 2.5 on 0-255 bounds the RMSE
        assert set(results["uap"]) == {f"{a}/{b}" for a in ("Deepfakes", "Face2Face") for b in ("Deepfakes", "Face2Face")}
    assert report["uap_craft_grad_calls"] == {"Deepfakes": 3, "Face2Face": 3}
    printed = result.text
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "findings"):
        assert heading in printed
    assert "| UAP crafted on Face2Face |" in printed and "| forensic_transfer" in printed
    assert "UAP accuracy, same data set (mean)" in printed and "| 0.032 |" in printed  # the paper's 3.17 %
    assert all((out / f"figure{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for i in (1, 2, 3))
    cells = (out / "cells.csv").read_text().splitlines()
    assert cells[0].startswith("table,dataset,iterations,images,perturbation,model,metric,ours,paper")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    again = json.loads((reproduce_ffm("smoke", TINY_PLAN).out_dir / "report.json").read_text())
    assert all(r["reused"] for r in again["runs"].values())
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps  # nothing measured again
    assert again["results"] == results


def test_an_impossible_plan_stops_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    with pytest.raises(ConfigError, match="reproduce.base='Face2Face' is not among"):
        reproduce_ffm("smoke", [*TINY_PLAN, "reproduce.datasets=[Deepfakes]"])
    assert not (tmp_path / "checkpoints").exists()
