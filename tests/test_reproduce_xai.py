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
from advdf.papers.pinhasov2024.reproduce import reproduce_xai
from advdf.report.render import CSV_EXTRA
from tests.helpers.scripts import TINY_DATA

pytestmark = pytest.mark.slow
DETECTORS = ("tiny_cnn", "mesonet")
TINY_PLAN = [
    "~reproduce.detectors", "+reproduce.detectors={tiny_cnn:['trainer.max_epochs=6'],mesonet:['trainer.max_epochs=3']}",
    "reproduce.xai.integrated_gradients=['n_steps=2']", "reproduce.per_class=4",
    "reproduce.training.all=['adv_data.per_class=8','adv_data.val_fraction=0.25','adv_detector.pretrained=false',"
    "'adv_detector.backbone=test_resnet','adv_detector.hidden=8','trainer.max_epochs=1','adv_data.batch_size=8']",
    "reproduce.training.table4=['trainer.max_epochs=2']",
    "xai_attacks.pgd.steps=2", "xai_attacks.pgd.alpha=8/255", "xai_attacks.apgd.steps=2", "xai_attacks.square.n_queries=6",
    "xai_attacks.nes.steps=2", "xai_attacks.nes.n_samples=2", "model.input_size=32",
    "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA,
]


@pytest.fixture
def artifacts(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path


def _calibrate_detectors() -> None:
    """Train the tiny deepfake detectors as the pipeline does, then move each one's decision threshold (the bias of
    its last linear layer) to the median fake-score of the 4 real test crops the pipeline scores: exactly two of them
    reach the adversarial detector, so every row of the tables has crops to score, while crops scored above the
    threshold are still caught by g. On the tiny tree a 2-layer g otherwise calls every crop fake, and a threshold
    fitted on training crops does not carry over to the test split on every machine. The pipeline reuses the
    detectors as calibrated."""
    from hydra.utils import instantiate
    from torch import nn

    from advdf.jobs.attack import balanced_positions
    from advdf.jobs.common import build_datamodule
    from advdf.jobs.plan import compose_config, ensure_trained
    from advdf.models import load_detector_weights, save_detector

    base = ["experiment=xai_smoke", *TINY_PLAN]
    for det, overrides in compose_config("train", base).reproduce.detectors.items():
        cfg = compose_config("train", [*base, f"model={det}", *overrides])
        path = ensure_trained([*base, f"model={det}", *overrides]).weights
        g = instantiate(cfg.model)
        load_detector_weights(g, path)
        dataset = build_datamodule(cfg).dataset("test")
        real = [p for p in balanced_positions(dataset, 4, cfg.seed) if dataset.rows[p]["label"] == 0]
        with torch.no_grad():
            logits = g.eval()(torch.stack([dataset[p]["image"] for p in real]))
            score = (logits[:, 1] - logits[:, 0]).sort().values
            shift = (score[1] + score[2]) / 2
            last = [m for m in g.modules() if isinstance(m, nn.Linear)][-1]
            if last.out_features == 2:
                last.bias[1] -= shift
            else:  # one logit z exposed as [-z, z]
                last.bias[0] -= shift / 2
        save_detector(g, path)


def _recompute_pgd_saliency_cell(artifacts: Path) -> float:
    """d's accuracy on the tiny_cnn PGD test set with saliency maps, recomputed outside the pipeline: g's routing
    and maps from scratch (maps stored as float16, as the cache stores them), the attacked crops from the cache."""
    from advdf.jobs.attack import balanced_positions
    from advdf.jobs.common import build_datamodule
    from advdf.jobs.plan import compose_config
    from advdf.jobs.runs import find_run
    from advdf.models import create_detector, load_detector_weights
    from advdf.xai import DetectResNet50, create_xai

    det_dir = find_run(artifacts / "checkpoints" / "ffpp_synthetic" / "tiny_cnn_32px_base")
    g = create_detector("tiny_cnn", input_size=32)
    load_detector_weights(g, det_dir / "detector.safetensors")
    g.eval()
    d = DetectResNet50("test_resnet", pretrained=False, hidden=8)
    d.load_state_dict(load_file(str(find_run(det_dir / "adv_detectors" / "detect_resnet50" / "saliency") /
                                    "adv_detector.safetensors")))
    d.eval()
    dataset = build_datamodule(compose_config("train", ["experiment=xai_smoke", *TINY_PLAN, "model=tiny_cnn"])).dataset(
        "test")
    real = [p for p in balanced_positions(dataset, 4, 0) if dataset.rows[p]["label"] == 0]
    (pgd,) = [s for s in (artifacts / "adv_cache" / "ffpp_synthetic" / det_dir.name).glob("pgd-*")
              if json.loads((s / "key.json").read_text())["data"]["split"] == "test"]
    attacked = load_file(str(pgd / "shard_00000.safetensors"))["x_adv"]
    images = torch.cat([torch.stack([dataset[p]["image"] for p in real]), attacked])
    label = torch.cat([torch.zeros(len(real)), torch.ones(len(attacked))]).long()
    with torch.no_grad():
        keep = g(images).argmax(1) == 0  # only crops g calls real reach d
    images, label = images[keep], label[keep]
    maps = create_xai("saliency")(g, images, torch.zeros(len(images), dtype=torch.long)).half().float()
    with torch.no_grad():
        pred = (d(images, maps).softmax(1)[:, 1] > 0.5).long()
    return (pred == label).float().mean().item()


def _cells(path: Path) -> dict[tuple[str, ...], str]:
    values = {"metric", "ours", "paper", *CSV_EXTRA}  # the cell's key is what is left
    return {tuple(r[k] for k in r if k not in values): r["ours"] for r in csv.DictReader(open(path))}


def _stamps(paths) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def test_tables_3_and_4_are_computed_in_full_and_share_their_sets_and_maps(artifacts):
    _calibrate_detectors()
    result3 = reproduce_xai("table3", "smoke", TINY_PLAN)
    out3 = result3.out_dir
    cells3 = _cells(out3 / "table3.csv")
    rows = ("pgd_black", "pgd", "apgd", "square", "nes", "average")
    xai = ("guided_backprop", "input_x_gradient", "integrated_gradients", "saliency")
    assert set(cells3) == {(d, r, x) for d in DETECTORS for r in rows for x in xai} | {
        ("all", "total_average", x) for x in xai}
    assert all(v != "" for v in cells3.values()), "a cell was not computed"
    table2 = list(csv.DictReader(open(out3 / "seed001_table2.csv")))
    assert {(r["attack"], r["detector"], r["metric"]) for r in table2} == {
        (a, d, m) for a in ("pgd", "apgd", "square", "nes") for d in DETECTORS for m in ("vid", "f2f")}
    assert all(r["ours"] != "" for r in table2)
    printed = result3.text  # the report the command line prints
    assert "Seed 001, Table 3" in printed and "Total Average" in printed and "Seed 001, Table 2" in printed
    detail_rows = json.loads((out3 / "detail.json").read_text())
    for d in DETECTORS:
        for x in xai:  # a ROC curve needs both classes among the crops g lets through
            has_roc = any(r["auc"] is not None for r in detail_rows if (r["detector"], r["xai"]) == (d, x))
            png = out3 / "roc" / f"{d}_{x}.png"
            assert png.is_file() == has_roc and (not has_roc or png.read_bytes()[:4] == b"\x89PNG")
    assert all((out3 / "roc" / f"tiny_cnn_{x}.png").is_file() for x in xai)

    # A cell recomputed independently: tiny_cnn + saliency, PGD row, from g, d and the cached PGD set.
    detail = {(r["detector"], r["xai"], r["attack"]): r for r in json.loads((out3 / "detail.json").read_text())}
    assert all(r["n_real_routed"] == 2 for r in detail.values())  # the calibration's two real crops in every cell
    row = detail["tiny_cnn", "saliency", "pgd"]
    assert row["acc"] == pytest.approx(float(cells3["tiny_cnn", "pgd", "saliency"]), abs=1e-5)
    assert row["acc"] == pytest.approx(_recompute_pgd_saliency_cell(artifacts), abs=1e-6)
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
    result4 = reproduce_xai("table4", "smoke", TINY_PLAN)
    out4 = result4.out_dir
    cells4 = _cells(out4 / "table4.csv")
    assert set(cells4) == set(cells3) and all(v != "" for v in cells4.values())
    assert _stamps(stamps) == stamps
    assert sorted(artifacts.glob("adv_cache/**/summary.json")) == sets
    heads = list(artifacts.glob("checkpoints/**/detect_resnet50_head/**/adv_detector.safetensors"))
    assert len(heads) == 2 * 4
    report = json.loads((out4 / "report.json").read_text())
    found = {(f["key"], f["scope"]): f for f in report["findings"]}
    assert found["finetune_beats_head", "all"]["values"]["xai"] == 4
    assert {k for k, _ in found} == {"maps_beat_pgd_b", "square_hardest", "finetune_beats_head"}
    # every g is marked by its clean accuracy, and a finding over the strong g's is judged (or says none is)
    clean = {d: report["detectors"][d]["g"]["metrics"]["test/acc"] for d in DETECTORS}
    strong = found["maps_beat_pgd_b", "strong"]
    assert strong["values"]["rows"] == [d for d in ("tiny_cnn", "mesonet") if clean[d] >= 0.85]
    for d in DETECTORS:
        assert (f"| {d}† |" in result4.text) == (clean[d] < 0.85)
    cells4_rows = list(csv.DictReader(open(out4 / "table4.csv")))
    assert all(r["below_threshold"] == str(clean[r["detector"]] < 0.85) for r in cells4_rows if r["detector"] != "all")
    rate = next(r for r in cells4_rows if (r["detector"], r["attack"], r["xai"]) == ("tiny_cnn", "pgd", "saliency"))
    assert int(rate["n"]) == detail["tiny_cnn", "saliency", "pgd"]["n_routed"] and rate["lo"] and rate["hi"]
    assert "finetuned beats head-only in" in result4.text

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
    ("+reproduce.training.table5=[]", "table5"),
])
def test_a_bad_plan_fails_before_any_work(artifacts, override, match):
    with pytest.raises(ConfigError, match=match):
        reproduce_xai("table3", "smoke", [override])
    assert not (artifacts / "checkpoints").exists() and not (artifacts / "adv_cache").exists()
