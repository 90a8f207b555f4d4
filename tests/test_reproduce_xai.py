"""make reproduce-table3 / reproduce-table4 on tiny settings: every cell of seed 001's Tables 2-4 comes from real
attacks, maps, trained adversarial detectors and evaluations; the second table reuses the first's attacked sets and
maps, and a rerun recomputes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advdf.errors import ConfigError
from advdf.pipelines.xai_reproduce import reproduce_xai
from tests.helpers.scripts import TINY_DATA

pytestmark = pytest.mark.slow
DETECTORS = ("tiny_cnn", "mesonet")
TINY_PLAN = [
    "~reproduce.detectors", "+reproduce.detectors={tiny_cnn:[trainer.max_epochs=6],mesonet:[trainer.max_epochs=3]}",
    "reproduce.xai.integrated_gradients=[n_steps=2]", "reproduce.per_class=4",
    "reproduce.training=[adv_data.per_class=8,adv_data.val_fraction=0.25,adv_detector.pretrained=false,"
    "adv_detector.backbone=resnet18,adv_detector.hidden=8,trainer.max_epochs=1,adv_data.batch_size=8]",
    "xai_attacks.pgd.steps=2", "xai_attacks.apgd.steps=2", "xai_attacks.square.n_queries=6",
    "xai_attacks.nes.steps=2", "xai_attacks.nes.n_samples=2", "model.input_size=32",
    "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA,
]


@pytest.fixture
def artifacts(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path


def _cells(path: Path) -> dict[tuple[str, ...], str]:
    return {tuple(r[k] for k in r if k not in ("metric", "ours", "paper")): r["ours"] for r in csv.DictReader(open(path))}


def _stamps(paths) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def test_tables_3_and_4_are_computed_in_full_and_share_their_sets_and_maps(artifacts, capsys):
    out3 = reproduce_xai("table3", "smoke", TINY_PLAN)
    cells3 = _cells(out3 / "table3.csv")
    rows = ("pgd_black", "pgd", "apgd", "square", "nes", "average")
    xai = ("guided_backprop", "input_x_gradient", "integrated_gradients", "saliency")
    assert set(cells3) == {(d, r, x) for d in DETECTORS for r in rows for x in xai} | {
        ("all", "total_average", x) for x in xai}
    assert all(v != "" for v in cells3.values()), "a cell was not computed"
    table2 = _cells(out3 / "seed001_table2.csv")
    assert len(table2) == 4 * 2 * 2 and all(v != "" for v in table2.values())
    printed = capsys.readouterr().out
    assert "Seed 001, Table 3" in printed and "Total Average" in printed and "Seed 001, Table 2" in printed
    for d in DETECTORS:
        for x in xai:
            assert (out3 / "roc" / f"{d}_{x}.png").read_bytes()[:4] == b"\x89PNG"

    # A cell recomputed from what is on disk: tiny_cnn + saliency, PGD row.
    detail = {(r["detector"], r["xai"], r["attack"]): r for r in json.loads((out3 / "detail.json").read_text())}
    row = detail["tiny_cnn", "saliency", "pgd"]
    assert row["acc"] == pytest.approx(float(cells3["tiny_cnn", "pgd", "saliency"]))
    assert row["n_routed"] == row["n_real_routed"] + row["n_attacked_routed"]
    assert row["n_attacked_routed"] + row["caught_by_g"] == 4  # per_class 4 attacked crops
    black = detail["tiny_cnn", "saliency", "pgd_black"]
    assert black["n_routed"] == row["n_routed"]

    maps = sorted(artifacts.glob("adv_cache/**/xai/*/summary.json"))
    sets = sorted(artifacts.glob("adv_cache/**/summary.json"))
    # per detector: 4 XAI x (train real, train pgd, test real, 4 test attacks); nothing empty routed is stored
    assert 0 < len(maps) <= 2 * 4 * 7
    for shard in artifacts.glob("adv_cache/**/xai/*/shard_*.safetensors"):
        m = load_file(str(shard))["map"].float()
        assert torch.isfinite(m).all() and m.abs().max() <= 1 and m.shape[1:] == (3, 32, 32)
    stamps = _stamps([*sets, *artifacts.glob("checkpoints/**/detector.safetensors"),
                      *artifacts.glob("checkpoints/**/detect_resnet50/**/adv_detector.safetensors")])

    # Table 4: only the head-only detectors are trained; attacked sets and maps are read back.
    out4 = reproduce_xai("table4", "smoke", TINY_PLAN)
    cells4 = _cells(out4 / "table4.csv")
    assert set(cells4) == set(cells3) and all(v != "" for v in cells4.values())
    assert _stamps(stamps) == stamps
    assert sorted(artifacts.glob("adv_cache/**/summary.json")) == sets
    heads = list(artifacts.glob("checkpoints/**/detect_resnet50_head/**/adv_detector.safetensors"))
    assert len(heads) == 2 * 4
    report = json.loads((out4 / "report.json").read_text())
    assert report["findings"]["finetune_beats_head"]["xai"] == 4
    assert "finetuned beats head-only in" in capsys.readouterr().out

    # A rerun of Table 3 trains, attacks and evaluates nothing.
    cell_stamps = _stamps([*(out3 / "cells").iterdir(), *stamps, *heads])
    reproduce_xai("table3", "smoke", TINY_PLAN)
    assert _stamps(cell_stamps) == cell_stamps
    assert _cells(out3 / "table3.csv") == cells3


@pytest.mark.parametrize("override, match", [
    ("reproduce.attacks=[apgd,square]", "pgd"),
    ("reproduce.attacks=[pgd,fgsm]", "fgsm"),
    ("+reproduce.xai.lime=[]", "lime"),
    ("+reproduce.detectors.no_such_net=[]", "no_such_net"),
    ("reproduce.adv_detectors.table3=resnet9", "resnet9"),
])
def test_a_bad_plan_fails_before_any_work(artifacts, override, match):
    with pytest.raises(ConfigError, match=match):
        reproduce_xai("table3", "smoke", [override])
    assert not (artifacts / "checkpoints").exists() and not (artifacts / "adv_cache").exists()
