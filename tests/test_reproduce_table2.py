"""make reproduce-table2 on tiny settings: every cell comes from a real attack and evaluation, counted generations
are one per (detector, attack, attacked model), and an interrupted grid resumes without redoing finished work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advdf.defenses import LearnedDenoiser
from advdf.denoisers import DUNet
from advdf.errors import ConfigError
from advdf.jobs.runs import find_run
from advdf.models import create_detector, load_detector_weights
from advdf.papers.jin2025 import table2 as grid
from advdf.papers.jin2025.table2 import reproduce_table2
from tests.helpers.scripts import TINY_DATA

pytestmark = pytest.mark.slow
HGD_TINY = ["name=hgd_tiny", "denoiser.encoder_widths=[4,4,4,4,4]", "denoiser.encoder_blocks=[1,1,1,1,1]",
            "denoiser.decoder_widths=[4,4,4,4]", "denoiser.decoder_blocks=[1,1,1,1]"]
TINY_GRID = [
    "~reproduce.detectors", "+reproduce.detectors={tiny_cnn:[]}", "reproduce.attacks=[fgsm,pgd]",
    "reproduce.columns=[na,ms,jpeg70,augmix,dae,hgd,td]", "reproduce.per_class=4", "~reproduce.denoisers",
    '+reproduce.denoisers.dae=["denoiser.widths=[4,8]"]',
    "+reproduce.denoisers.hgd=[" + ",".join(f'"{o}"' for o in HGD_TINY) + "]",
    '+reproduce.denoisers.td=["denoiser.widths=[4,8]"]',
    'reproduce.denoiser_training.all=["trainer.max_epochs=1","denoiser_data.per_class=6",'
    '"denoiser_data.attacks.pgd.steps=2"]', '+reproduce.denoiser_training.dae=["trainer.max_epochs=2"]',
    "reproduce.adaptive.attacks=[fgsm]", "reproduce.adaptive.defenses=[jpeg70,hgd]",
    "attacks.pgd.steps=2", "model.input_size=32", "trainer.max_epochs=6", "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA,
]


def _ours(out: Path) -> dict[tuple[str, str, str], float]:
    return {(c["detector"], c["attack"], c["defense"]): float(c["ours"])
            for c in csv.DictReader(open(out / "table2.csv")) if c["ours"]}


def _run(artifacts: Path, variant: str) -> Path:
    return find_run(artifacts / "checkpoints" / "ffpp_synthetic" / f"tiny_cnn_32px_{variant}")


def _set(artifacts: Path, variant: str, attack: str) -> dict[str, torch.Tensor]:
    root = artifacts / "adv_cache" / "ffpp_synthetic" / _run(artifacts, variant).name
    (directory,) = [d for d in root.glob(f"{attack}-*")
                    if json.loads((d / "key.json").read_text())["data"]["split"] == "test"]
    return load_file(str(directory / "shard_00000.safetensors"))


def _detector(artifacts: Path, variant: str):
    detector = create_detector("tiny_cnn", input_size=32)
    load_detector_weights(detector, _run(artifacts, variant) / "detector.safetensors")
    return detector.eval()


@pytest.fixture
def artifacts(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path


def test_grid_cells_are_recomputable_and_a_rerun_recomputes_nothing(artifacts):
    result = reproduce_table2("smoke", TINY_GRID)
    out = result.out_dir
    report = json.loads((out / "report.json").read_text())
    g = report["generations"]
    # 2 attacks x (base detector, AugMix detector); a per-column generation would be 2 x 7
    assert (g["run"], g["reused"], g["naive"]) == (4, 0, 14)
    assert (g["adaptive_run"], g["adaptive_reused"]) == (2, 0)
    ours = _ours(out)
    assert set(ours) == {("tiny_cnn", a, d) for a in ("fgsm", "pgd")
                         for d in ("na", "ms", "jpeg70", "augmix", "dae", "hgd", "td")}

    # Cells recomputed independently from the cached sets: NA, AugMix (its own detector's set) and HGD.
    base, augmix = _detector(artifacts, "base"), _detector(artifacts, "augmix")
    shard = _set(artifacts, "base", "pgd")
    with torch.no_grad():
        acc = (base(shard["x_adv"]).argmax(1) == shard["label"]).float().mean().item()
        assert ours["tiny_cnn", "pgd", "na"] == pytest.approx(acc)
        aug = _set(artifacts, "augmix", "pgd")
        assert torch.equal(aug["position"], shard["position"]) and not torch.equal(aug["x_adv"], shard["x_adv"])
        acc = (augmix(aug["x_adv"]).argmax(1) == aug["label"]).float().mean().item()
        assert ours["tiny_cnn", "pgd", "augmix"] == pytest.approx(acc)
        hgd = LearnedDenoiser(DUNet((4,) * 5, (1,) * 5, (4,) * 4, (1,) * 4), name="hgd_tiny",
                              checkpoint=str(find_run(_run(artifacts, "base") / "denoisers" / "hgd_tiny") /
                                             "denoiser.safetensors"))
        acc = (base(hgd(shard["x_adv"])).argmax(1) == shard["label"]).float().mean().item()
        assert ours["tiny_cnn", "pgd", "hgd"] == pytest.approx(acc)
    assert len(shard["label"]) == 8 and shard["label"].sum() == 4  # per_class 4: 4 real + 4 fake frames

    adaptive = list(csv.DictReader(open(out / "adaptive.csv")))
    assert {(r["attack"], r["defense"]) for r in adaptive} == {("fgsm", "jpeg70"), ("fgsm", "hgd")}
    for r in adaptive:
        assert float(r["non_adaptive"]) == pytest.approx(ours["tiny_cnn", "fgsm", r["defense"]], abs=1e-4)
    for name in ("table2.tex", "adaptive.tex", "table2.md", "adaptive.md"):
        assert (out / name).stat().st_size > 0
    for name in ("table2.png", "adaptive.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = result.text  # the report the command line prints
    assert "attack generations: 4 (4 run now, 0 read from the cache)" in printed and "would be 14" in printed

    # marks: the base detector's clean test accuracy on every row, the AugMix detector's on the AugMix column
    clean = {v: report["detectors"]["tiny_cnn"]["train"][v]["test/acc"] for v in ("base", "augmix")}
    rows = [r for r in csv.DictReader(open(out / "table2.csv")) if r["detector"] == "tiny_cnn" and r["ours"]]
    for r in rows:
        acc = clean["augmix" if r["defense"] == "augmix" else "base"]
        assert float(r["clean_acc"]) == pytest.approx(acc, abs=1e-4) and r["below_threshold"] == str(acc < 0.85)
        assert r["n"] == "8" and float(r["lo"]) <= float(r["ours"]) <= float(r["hi"])
    assert ("| tiny_cnn† | fgsm |" in printed) == (clean["base"] < 0.85)
    assert all(r["n"] == "8" and r["lo"] for r in adaptive)
    found = {(f["key"], f["scope"]) for f in report["findings"]}
    assert found == {(k, s) for k in ("na_near_zero", "hgd_td_best_pgd_bim", "smoothing_augmix_best_deepfool",
                                      "jpeg70_ge_jpeg90") for s in ("all", "strong")}
    assert result.findings and set(result.tables) == {"table2", "table2_adaptive"}

    # A finished grid: a rerun trains, attacks and evaluates nothing and prints the same cells.
    cells_dir = out / "cells"
    stamps = {p: p.stat().st_mtime_ns for p in [*cells_dir.iterdir(), *artifacts.glob("checkpoints/**/*.safetensors")]}
    reproduce_table2("smoke", TINY_GRID)
    g = json.loads((out / "report.json").read_text())["generations"]
    assert (g["run"], g["reused"], g["adaptive_run"], g["adaptive_reused"]) == (0, 4, 0, 2)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert _ours(out) == ours


def test_an_interrupted_grid_resumes_where_it_stopped(artifacts, monkeypatch):
    real = grid.evaluate_cached
    calls = []

    def killed_on_third(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the job is killed while evaluating the third set
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "evaluate_cached", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        reproduce_table2("smoke", TINY_GRID)
    monkeypatch.setattr(grid, "evaluate_cached", real)
    denoisers = {p: p.stat().st_mtime_ns for p in artifacts.glob("checkpoints/**/denoiser.safetensors")}
    assert len(denoisers) == 3

    out = reproduce_table2("smoke", TINY_GRID).out_dir
    g = json.loads((out / "report.json").read_text())["generations"]
    # fgsm (base, augmix) and pgd (base) were generated before the kill; only pgd against AugMix is left
    assert (g["run"], g["reused"]) == (1, 3)
    assert {p: p.stat().st_mtime_ns for p in denoisers} == denoisers
    assert len(_ours(out)) == 14


@pytest.mark.parametrize("override, match", [
    ("reproduce.attacks=[pgd,no_such_attack]", "no_such_attack"),
    ("reproduce.columns=[na,cutout]", "cutout"),
    ("reproduce.adaptive.defenses=[augmix]", "training method"),
    ("+reproduce.detectors.no_such_net=[]", "no_such_net"),
    ("+reproduce.denoiser_training.hdg=[]", "hdg"),
])
def test_a_bad_plan_fails_before_any_work(artifacts, override, match):
    with pytest.raises(ConfigError, match=match):
        reproduce_table2("smoke", [override])
    assert not (artifacts / "checkpoints").exists() and not (artifacts / "adv_cache").exists()
