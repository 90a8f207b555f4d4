"""Why KRA changes a quarter of the pixels at smoke scale: PL0 and key-region area against input side and layers.

``python -m benchmarks.kra_pl0`` (CPU; ``--help`` for the options; about 13 min on a busy 2-core machine with
two checkpoints, ``--untrained`` and ``--layer-sides 64,128``)::

    python -m benchmarks.kra_pl0 [--checkpoint PATH@SIDE ...] [--untrained] [--sides 64,96,128,224]
        [--per-class 8] [--layer-sides 64] [--attack-layer-sides 64] [--attack-variants shallow,deep,all,min8,...]
        [--attack-mismatched] [--steps 20] [--threads 2] [--out artifacts/bench/kra_pl0.md]

Seed 004 (Liao et al. 2021) reports PL0 ~0.9 % for KRA-PGD on ResNet-50 at 224 px; the smoke reproduction
(64 px) measures ~25 %. One architecture (timm's ResNet-50, ``advdf.models.create_detector``), KRA-PGD with
the settings of ``conf/attack/kra_pgd.yaml`` (PGD eps 16/255, alpha 2/255, 20 steps, random start;
thresholds 0.8 -> 0.1 by 0.1), on a balanced set of test crops of the prepared data the detector was trained on
(resized to each side with ``FrameDataset``). Three parts:

1. **Input side.** For each detector (``--checkpoint PATH@SIDE``: weights trained at SIDE px, and with
   ``--untrained`` a randomly initialized, seeded ResNet-50 whose labels are its own predictions) and each side
   of ``--sides``: the key-region area at the first threshold (t = 0.8, the union of the default layers, and
   the deepest layer's own mask), the deepest map's side and the share of the image one of its cells covers,
   PL0 of KRA-PGD exactly as the reproduction reports it (``advdf.attacks.kra.perceptibility``, mean over
   every frame; a frame the detector already gets wrong is left unperturbed and counts 0), PL0 over the
   attacked frames, ASR, and the distribution of the threshold at which each frame was fooled. KRA-PGD runs
   where a detector sees its training side (``--attack-mismatched``: everywhere); elsewhere the areas only
   (one forward+backward), marked size-mismatched: such a detector's accuracy falls to chance and its maps
   change. The untrained ResNet-50 is a poor stand-in: timm zero-initializes each block's last BatchNorm, so
   the gradient at ``layer4.2.conv3`` is exactly zero and its map is flat (area 0).
2. **Layer choice.** For each side of ``--layer-sides`` (on the detector trained at that side): each default
   layer alone, shallow only (the two first), deep only (the two last), all (the default, the paper's
   shallow-to-deep union), the default restricted to maps of at least 8 x 8 (``min_map_side=8``), and the
   intersection of the default layers' masks (the other reading of Eq. 6, whose operator is lost in the
   extraction of the paper; not an advdf option). The variants of ``--attack-variants`` are attacked at the
   sides of ``--attack-layer-sides``, the others get their areas only.
3. **The paper's numbers.** PL0 of Table 1 in pixels and in cells of each detector's deepest map at the
   paper's input side, beside ours.

Writes the report as markdown (``--out``) and the raw numbers as JSON beside it, and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.utils.io import atomic_write_json, atomic_write_text

DEFAULT_CHECKPOINT = ("/tmp/after/artifacts/checkpoints/ffpp_synthetic/resnet50_64px_base-90234f4a176a/"
                      "detector.safetensors@64")
MODEL = "resnet50"
MIN_MAP_SIDE = 8
# Seed 004's Table 1 KRA-PGD rows on FaceForensics++ and their input sides (the paper's detectors at their
# usual sides: Xception 299, ResNets 224) with the side of their deepest convolutional map there.
PAPER_ROWS = [("kra_pgd", "faceforensics_all", "xception", 299, 10),
              ("kra_pgd", "faceforensics_all", "resnet50", 224, 7),
              ("kra_pgd", "faceforensics_all", "resnet101", 224, 7),
              ("kra_pgd", "cnn_synth_all", "resnet50", 224, 7),
              ("kra_deepfool", "faceforensics_all", "xception", 299, 10)]


@dataclass(frozen=True)
class Detector:
    """One ResNet-50: trained weights (``path``, trained at ``side`` px) or a seeded random init (``path=None``)."""

    label: str
    path: Path | None
    side: int | None
    data: Path | None


def parse_checkpoint(spec: str) -> Detector:
    path, _, side = spec.rpartition("@")
    if not path or not side.isdigit():
        raise ConfigError(f"--checkpoint wants PATH@SIDE (weights and the side they were trained at), got {spec!r}")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--checkpoint {path} does not exist")
    summary = path.parent / "train_summary.json"
    data = None
    if summary.is_file():
        data = json.loads(summary.read_text()).get("config", {}).get("data", {}).get("prepared_dir")
    return Detector(f"trained@{side}", path, int(side), Path(data) if data else None)


def build_model(det: Detector, side: int, seed: int) -> nn.Module:
    from advdf.models import create_detector
    from advdf.models.checkpoint import load_detector_weights

    torch.manual_seed(seed)
    model = create_detector(MODEL, pretrained=False, input_size=side)
    if det.path is not None:
        load_detector_weights(model, det.path)
    return model.eval()


def test_frames(prepared: Path, side: int, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The balanced test subset the reproduction uses (``balanced_subset``, seed 0), resized to ``side``."""
    from advdf.data.dataset import FrameDataset, balanced_subset, read_index

    rows = balanced_subset([r for r in read_index(prepared) if r["split"] == "test"], per_class)
    ds = FrameDataset(rows, prepared, side)
    items = [ds[i] for i in range(len(rows))]
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])


def kra_pgd(model: nn.Module, steps: int, **options) -> nn.Module:
    """KRA-PGD from conf/attack/kra_pgd.yaml (the reproduction's settings), with ``options`` overriding it."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from advdf.utils.entry import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="kra_pl0"):
        cfg = compose("attack", overrides=["attack=kra_pgd", f"attack.attack.steps={steps}"])
    return instantiate(cfg.attack)(model=model, **options)


def intersection(kra):
    """``kra`` with Eq. 6 read as the intersection of the layers' masks: ``all_i(G_i > t) == (min_i G_i > t)``,
    so the per-sample minimum over layers, as a one-layer map, gives KRA's union rule that mask."""
    plain = kra.layer_maps

    def layer_maps(x, goal):
        maps, logits = plain(x, goal)
        return maps.amin(1, keepdim=True), logits

    kra.layer_maps = layer_maps
    return kra


def map_sides(model: nn.Module, layers: list[str], x: torch.Tensor) -> list[int]:
    """The shorter side of each named convolution's output for input ``x``."""
    mods = dict(model.named_modules())
    sides: dict[str, int] = {}

    def keep(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            sides.setdefault(name, min(output.shape[-2:]))
        return hook

    handles = [mods[n].register_forward_hook(keep(n)) for n in layers]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return [sides[n] for n in layers]


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int, attack: bool = True,
            wrap: Callable | None = None, **options) -> dict:
    """Key-region areas of KRA-PGD's masks on (x, y) and, with ``attack``, PL0, ASR and the final thresholds of
    one KRA-PGD run (without it those fields are None: the areas cost one forward+backward, the attack ~20-60)."""
    from advdf.attacks.kra import key_region, perceptibility

    kra = kra_pgd(model, steps, **options)
    raw, clean = kra.layer_maps(x, y)  # the same maps KRA's perturb computes (deterministic)
    layers = list(kra.layers_used)
    maps = raw
    if wrap is not None:
        kra = wrap(kra)
        maps, _ = kra.layer_maps(x, y)
    attacked = clean.argmax(1) == y
    area = {f"{t:.1f}": key_region(maps, t).float().mean((1, 2, 3))[attacked].mean().item() for t in kra.thresholds}
    per_layer = (raw > kra.thresholds[0]).float().mean((2, 3))[attacked].mean(0).tolist()
    acc_clean = attacked.float().mean().item()
    row = {"layers": layers, "map_sides": map_sides(model, layers, x), "n": len(x), "acc_clean": acc_clean,
           "area": area, "area_first": area[f"{kra.thresholds[0]:.1f}"], "per_layer_first": per_layer,
           "acc_adv": None, "asr": None, "pl0": None, "pl0_attacked": None, "final_threshold": None,
           "grad_calls_mean": None, "attack_s": None}
    if not attack:
        return row
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    out = kra.run(x, y)
    wall = time.perf_counter() - t0
    pl0 = perceptibility(out.x_adv, x)["pl0"]
    acc_adv = (out.logits.argmax(1) == y).float().mean().item()
    st = kra.success_threshold
    final = {f"{t:.1f}": int(((st - t).abs() < 1e-6).sum()) for t in kra.thresholds}
    final["not fooled"] = int((st.isnan() & attacked.cpu()).sum())
    final["clean wrong"] = int((~attacked).sum())
    return {**row, "acc_adv": acc_adv, "asr": 1 - acc_adv / acc_clean if acc_clean else float("nan"),
            "pl0": pl0.mean().item(), "pl0_attacked": pl0[attacked].mean().item() if attacked.any() else 0.0,
            "final_threshold": final, "grad_calls_mean": out.grad_calls.float().mean().item(), "attack_s": wall}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}%"


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _finals(final: dict | None) -> str:
    return "—" if final is None else ", ".join(f"{k}: {v}" for k, v in final.items() if v)


_RUNS: dict[tuple, dict] = {}  # (detector, side, variant) -> its measurement, so a repeated run is reused


def _measured(det: Detector, side: int, variant: str, *args, attack: bool, **kwargs) -> dict:
    """``measure(*args, attack=attack, **kwargs)``, reused when the same detector, side and variant ran before."""
    key = (det.label, side, variant)
    if key not in _RUNS or (attack and _RUNS[key]["pl0"] is None):
        _RUNS[key] = measure(*args, attack=attack, **kwargs)
    return _RUNS[key]


def side_sweep(args, detectors: list[Detector], prepared: Path) -> tuple[list[dict], list[str]]:
    rows, md = [], []
    md += ["## 1. Input side (default layers: the last convolution at each resolution, union)", "",
           "| detector | side | deepest map | one deep cell | area t=0.8 (union) | area t=0.8 (deepest alone) | "
           "PL0 (as reported) | PL0 (attacked) | ASR | acc clean | fooled at threshold | s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for det in detectors:
        for side in args.sides:
            model = build_model(det, side, args.seed)
            x, y = test_frames(det.data or prepared, side, args.per_class)
            if det.path is None:
                with torch.no_grad():
                    y = model(x).argmax(1)  # untrained: its own predictions are the labels
            attack = det.side == side or (args.attack_mismatched and det.path is not None)
            r = _measured(det, side, "all", model, x, y, args.steps, args.seed, attack=attack)
            deep = r["map_sides"][-1]
            label = det.label + ("" if det.side in (None, side) else " (size-mismatched)")
            rows.append({"detector": det.label, "trained_side": det.side, "side": side, **r})
            md.append(f"| {label} | {side} | {deep} x {deep} | {_pct(1 / deep ** 2)} | {_pct(r['area_first'])} | "
                      f"{_pct(r['per_layer_first'][-1])} | {_pct(r['pl0'])} | {_pct(r['pl0_attacked'])} | "
                      f"{_num(r['asr'], '.3f')} | {r['acc_clean']:.3f} | {_finals(r['final_threshold'])} | "
                      f"{_num(r['attack_s'], '.0f')} |")
            print(md[-1], file=sys.stderr, flush=True)
    return rows, md + [""]


def layer_sweep(args, detectors: list[Detector], prepared: Path) -> tuple[list[dict], list[str]]:
    rows, md = [], []
    for side in args.layer_sides:
        det = next((d for d in detectors if d.side == side), None)
        if det is None:
            md += [f"(no detector trained at {side} px: layer sweep at {side} px skipped)", ""]
            continue
        model = build_model(det, side, args.seed)
        x, y = test_frames(det.data or prepared, side, args.per_class)
        auto = kra_pgd(model, args.steps)
        auto.layer_maps(x[:1], y[:1])
        default = list(auto.layers_used)
        sides = map_sides(model, default, x)
        variants: list[tuple[str, str, dict, Callable | None]] = [
            (f"alone{i}", f"{n} alone ({s} x {s})", {"layers": [n]}, None)
            for i, (n, s) in enumerate(zip(default, sides, strict=True))]
        variants += [("shallow", f"shallow only ({sides[0]}, {sides[1]})", {"layers": default[:2]}, None),
                     ("deep", f"deep only ({sides[-2]}, {sides[-1]})", {"layers": default[-2:]}, None),
                     ("all", f"all {len(default)}, union (default, paper's Eq. 6 as union)", {}, None),
                     ("min8", f"maps >= {MIN_MAP_SIDE} x {MIN_MAP_SIDE}, union (min_map_side={MIN_MAP_SIDE})",
                      {"min_map_side": MIN_MAP_SIDE}, None),
                     ("intersection", f"all {len(default)}, intersection (Eq. 6 read as intersection)", {},
                      intersection)]
        md += [f"## 2. Layer choice at {side} px ({det.label}; default layers: "
               f"{', '.join(f'{n} ({s} x {s})' for n, s in zip(default, sides, strict=True))})", "",
               "| layers | area t=0.8 | area t=0.5 | area t=0.1 | PL0 (as reported) | PL0 (attacked) | ASR | "
               "fooled at threshold | s |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for key, name, options, wrap in variants:
            attack = side in args.attack_layer_sides and bool({key, "every"} & set(args.attack_variants))
            r = _measured(det, side, key, model, x, y, args.steps, args.seed, attack=attack, wrap=wrap, **options)
            rows.append({"side": side, "detector": det.label, "variant": name, **r})
            md.append(f"| {name} | {_pct(r['area']['0.8'])} | {_pct(r['area']['0.5'])} | {_pct(r['area']['0.1'])} "
                      f"| {_pct(r['pl0'])} | {_pct(r['pl0_attacked'])} | {_num(r['asr'], '.3f')} | "
                      f"{_finals(r['final_threshold'])} | {_num(r['attack_s'], '.0f')} |")
            print(md[-1], file=sys.stderr, flush=True)
        md.append("")
    return rows, md


def paper_implied(side_rows: list[dict]) -> tuple[list[dict], list[str]]:
    from advdf import paper_values

    paper = {(r["attack"], r["dataset"], r["network"]): r for r in paper_values.load("liao2021_kra_table1_whitebox")}
    rows, md = [], ["## 3. What the paper's PL0 implies", "",
                    "| row | input | deepest map | one deep cell | PL0 | pixels changed | in deep cells |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
    for attack, dataset, network, side, deep in PAPER_ROWS:
        pl0 = float(paper[(attack, dataset, network)]["pl0"])
        cells = pl0 * deep ** 2
        rows.append({"row": f"{attack} {dataset} {network}", "side": side, "deep": deep, "pl0": pl0, "cells": cells})
        md.append(f"| paper: {attack} {dataset} {network} | {side} | {deep} x {deep} | {_pct(1 / deep ** 2)} | "
                  f"{_pct(pl0)} | {pl0 * side ** 2:.0f} | {cells:.2f} |")
    for r in side_rows:
        if r["trained_side"] == r["side"] and r["pl0"] is not None:
            deep = r["map_sides"][-1]
            md.append(f"| ours: kra_pgd {r['detector']} | {r['side']} | {deep} x {deep} | {_pct(1 / deep ** 2)} | "
                      f"{_pct(r['pl0'])} | {r['pl0'] * r['side'] ** 2:.0f} | {r['pl0'] * deep ** 2:.2f} |")
    return rows, md + [""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kra_pl0", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", action="append", default=None,
                   help=f"PATH@SIDE: ResNet-50 weights trained at SIDE px (repeatable; default {DEFAULT_CHECKPOINT})")
    p.add_argument("--data", default=None, help="prepared data dir (default: each checkpoint's training data)")
    p.add_argument("--untrained", action=argparse.BooleanOptionalAction, default=False,
                   help="add a randomly initialized ResNet-50 (labels: its own predictions) to the side sweep")
    p.add_argument("--sides", default="64,96,128,224", help="input sides of the side sweep (default 64,96,128,224)")
    p.add_argument("--layer-sides", default="64", help="sides of the layer sweep, each on the detector trained "
                   "at that side (default 64)")
    p.add_argument("--attack-mismatched", action=argparse.BooleanOptionalAction, default=False,
                   help="also run KRA-PGD where a trained detector sees a side it was not trained at (default: "
                   "areas only there)")
    p.add_argument("--attack-layer-sides", default="64", help="layer-sweep sides where the variants of "
                   "--attack-variants are attacked (default 64; elsewhere areas only)")
    p.add_argument("--attack-variants", default="shallow,deep,all,min8,intersection",
                   help="layer variants attacked: alone0..alone4, shallow, deep, all, min8, intersection, or every "
                   "(default shallow,deep,all,min8,intersection)")
    p.add_argument("--per-class", type=int, default=8, help="real and fake test frames each (default 8)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps per KRA round (default 20, kra_pgd.yaml's)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random init and PGD's random start (default 0)")
    p.add_argument("--out", default="artifacts/bench/kra_pl0.md", help="markdown report (JSON beside it)")
    args = p.parse_args(argv)
    args.sides = [int(s) for s in args.sides.split(",") if s]
    args.layer_sides = [int(s) for s in args.layer_sides.split(",") if s]
    args.attack_layer_sides = [int(s) for s in args.attack_layer_sides.split(",") if s]
    args.attack_variants = [v for v in args.attack_variants.split(",") if v]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    detectors = [parse_checkpoint(c) for c in (args.checkpoint or [DEFAULT_CHECKPOINT])]
    if args.untrained:
        detectors.append(Detector("untrained", None, None, None))
    prepared = Path(args.data) if args.data else next((d.data for d in detectors if d.data), None)
    if prepared is None:
        raise ConfigError("no prepared data: pass --data PREPARED_DIR (a directory with index.csv)")
    if args.data:
        detectors = [Detector(d.label, d.path, d.side, prepared) for d in detectors]
    t0 = time.perf_counter()
    side_rows, md1 = side_sweep(args, detectors, prepared)
    layer_rows, md2 = layer_sweep(args, detectors, prepared)
    paper_rows, md3 = paper_implied(side_rows)
    wall = time.perf_counter() - t0
    head = [f"# KRA-PGD PL0 vs input side and layers ({MODEL})", "",
            f"`python -m benchmarks.kra_pl0 {' '.join(argv if argv is not None else sys.argv[1:])}`; "
            f"{wall:.0f} s wall on {platform.node()} ({args.threads} threads, torch {torch.__version__}); "
            f"{2 * args.per_class} balanced test frames of {prepared}; KRA-PGD as conf/attack/kra_pgd.yaml with "
            f"{args.steps} PGD steps per round.", "",
            "Areas: mean share of pixels in the key-region mask over the frames the detector classifies correctly "
            "(the attacked ones). PL0 (as reported): `perceptibility(x_adv, x)['pl0']` averaged over every frame, "
            "as `make reproduce-kra` reports it. One deep cell: the share of the image one cell of the deepest "
            "map covers after upsampling. Fooled at threshold: frames per threshold of the round that fooled "
            "them.", ""]
    md = "\n".join(head + md1 + md2 + md3)
    out = Path(args.out)
    atomic_write_text(out, md + "\n")
    report = {"argv": argv, "wall_s": wall, "sides": side_rows, "layers": layer_rows, "paper": paper_rows}
    atomic_write_json(out.with_suffix(".json"), report)
    print(md)
    return report


if __name__ == "__main__":
    main()
