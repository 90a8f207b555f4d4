"""Seed 001's Tables 3 and 4 (the XAI-based adversarial detector) and its Table 2 (detectors under attack).

    python -m advdf.papers.reproduce table3 --scale smoke      (make reproduce-table3: Detect-ResNet50 finetuned)
    python -m advdf.papers.reproduce table4 --scale smoke      (make reproduce-table4: head only)

Per deepfake detector g (EfficientNetB4ST, Xception; trained, or reused from reproduce-table1): the test split's
real crops and its fake crops attacked with PGD, APGD, Square and NES toward "real" (one cached set per attack,
shared by both tables and all XAI methods); per XAI method, Detect-ResNet50 trained on real and PGD-attacked training
crops (``train.py task=adv_detector``) and scored on the crops g calls real, with their maps, and with zeroed maps
(PGD-B). Everything is cached: g, the attacked sets, the maps, the trained adversarial detectors and the evaluated
cells (``<results>/<table>_<scale>/cells/``), so a rerun or the other table only does what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.errors import ConfigError
from advdf.jobs.attack import balanced_positions
from advdf.jobs.common import build_datamodule, load_trained_detector, resolve_device
from advdf.jobs.plan import compose_config, detector_overrides, ensure_trained, require_detectors
from advdf.jobs.stages import barrier
from advdf.jobs.xai_data import XaiData, xai_version
from advdf.metrics import detection_report
from advdf.models.checkpoint import file_digest
from advdf.papers.marks import check_marks, clean_acc, marks_record, paper_only, plan_marks, row, runnable
from advdf.papers.pinhasov2024.adv_detect import (
    adv_detector_run,
    load_adv_detector,
    score_sets,
    train_adv_detector,
    trained_summary,
)
from advdf.papers.pinhasov2024.layout import (
    PINHASOV_ATTACKS,
    PINHASOV_ROW_HEADERS,
    PINHASOV_XAI_HEADERS,
    pinhasov_table2_cells,
    pinhasov_table2_markdown,
    pinhasov_xai_cells,
    pinhasov_xai_markdown,
)
from advdf.report.findings import Finding, both_scopes, finding_lines
from advdf.report.marks import Marks
from advdf.report.plots import grid_heatmap, roc_curves
from advdf.report.render import Lines, Reproduced, long_csv, mean_or_none
from advdf.report.wandb import log_wandb_tables
from advdf.store.cells import CellStore
from advdf.utils.entry import CONF_DIR
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("advdf.reproduce")

TABLES = {"table3": 3, "table4": 4}
CONFIG_NAMES = {3: "finetuned", 4: "head only"}


def _check_plan(spec: DictConfig, table: str) -> None:
    """Raise ConfigError for anything the plan names that cannot be composed, before any work starts."""
    check_marks(spec, spec.detectors)
    require_detectors(runnable(spec, spec.detectors))
    missing = [x for x in spec.xai if not (CONF_DIR / "xai" / f"{x}.yaml").is_file()]
    if missing:
        raise ConfigError(f"reproduce.xai {missing} have no conf/xai file "
                          f"(available: {', '.join(sorted(p.stem for p in (CONF_DIR / 'xai').glob('*.yaml')))})")
    name = spec.adv_detectors.get(table)
    if not name or not (CONF_DIR / "adv_detector" / f"{name}.yaml").is_file():
        raise ConfigError(f"reproduce.adv_detectors.{table}={name!r} names no conf/adv_detector file")
    unknown = sorted(set(spec.training) - {"all", *TABLES})
    if unknown:
        raise ConfigError(f"reproduce.training has {unknown}; its keys are all, {', '.join(TABLES)}")
    if "pgd" not in spec.attacks:
        raise ConfigError("reproduce.attacks must include pgd: it is the training attack and PGD-B's test set")


def _check_attacks(spec: DictConfig, cfg: DictConfig) -> None:
    unknown = [a for a in spec.attacks if a not in cfg.xai_attacks]
    if unknown:
        raise ConfigError(f"reproduce.attacks {unknown} are not in xai_attacks ({', '.join(cfg.xai_attacks)})")


def _stage_cfg(base: list[str], spec: DictConfig, det: str, table: str, xai: str | None = None,
               g: list[str] = ()) -> DictConfig:
    """The adversarial-detector config of ``det`` (``g``: the override naming its trained weights)."""
    xai_overrides = [f"xai={xai}", *(f"xai.{o}" for o in spec.xai[xai])] if xai else []
    training = [*spec.training.get("all", []), *spec.training.get(table, [])]
    return compose_config("train", [*base, *detector_overrides(spec, det), "task=adv_detector",
                                    f"adv_detector={spec.adv_detectors[table]}", *xai_overrides, *training, *g])


def reproduce_xai(table: str, scale: str, overrides: list[str], results_suffix: str = "") -> Reproduced:
    """Seed 001's Table 3 (``table3``, finetuned) or Table 4 (``table4``, head only), and its Table 2, written to
    ``<results>/<table>_<scale><results_suffix>/`` (a data seed's own directory, see :mod:`advdf.papers.seeds`)."""
    say = Lines()
    number = TABLES[table]
    base = [f"experiment=xai_{scale}", *overrides]
    plan = compose_config("train", base)
    spec = plan.reproduce
    _check_plan(spec, table)
    detectors = runnable(spec, spec.detectors)  # the paper-scale-only ones are neither trained nor attacked
    _check_attacks(spec, _stage_cfg(base, spec, detectors[0], table))
    out_dir = Path(plan.paths.results_dir) / f"{table}_{scale}{results_suffix}"
    store = CellStore(out_dir / "cells")
    report: dict = {"scale": scale, "table": table, "overrides": overrides, "data": plan.data.name, "detectors": {},
                    "paper_only": paper_only(spec)}
    ours: dict[tuple[str, str, str], float] = {}
    counts: dict[tuple[str, str, str], int] = {}
    clean: dict[str, float | None] = {}
    precision: dict[tuple[str, str], dict] = {}
    rows: list[dict] = []
    images: dict[str, Path] = {}
    t_start = time.perf_counter()
    trained_g, g_wall = {}, {}
    for det in detectors:  # every g before any attack: a staged run trains them in one wave
        t0 = time.perf_counter()
        trained_g[det] = ensure_trained([*base, *detector_overrides(spec, det), *spec.detectors[det]])
        g_wall[det] = time.perf_counter() - t0
    barrier("seed 001's attacks and maps")
    for det in detectors:
        r = report["detectors"][det] = {"xai": {}, "row": row(spec, det)}
        trained = trained_g[det]
        g = [trained.override()]  # every later stage reads this run's weights
        r["g"] = {"metrics": trained.metrics, "reused": trained.reused, "wall_s": g_wall[det]}
        clean[det] = clean_acc(trained.metrics)

        t0 = time.perf_counter()
        cfg = _stage_cfg(base, spec, det, table, g=g)
        device = resolve_device(cfg.device)
        datamodule = build_datamodule(cfg)
        data = XaiData(cfg, datamodule, load_trained_detector(cfg, device), device)
        positions = balanced_positions(datamodule.dataset("test"), spec.per_class, cfg.seed)
        real = data.real("test", positions)
        attacked = {a: data.attacked("test", cfg.xai_attacks[a], positions) for a in spec.attacks}
        for a, frames in attacked.items():
            precision[row(spec, det), a] = detection_report(frames.g_pred, torch.ones_like(frames.label), frames.video)
        r["attacks"] = {a: {**f.summary, "routed": len(f.routed()), "n": len(f)} for a, f in attacked.items()}
        r["real"] = {"n": len(real), "routed": len(real.routed())}
        r["attacks_wall_s"] = time.perf_counter() - t0

        for xai in spec.xai:
            xcfg = _stage_cfg(base, spec, det, table, xai, g=g)
            t0 = time.perf_counter()
            summary = trained_summary(xcfg)
            if summary is None:
                log.info("training %s on %s maps of %s", xcfg.adv_detector.name, xai, det)
                train_adv_detector(xcfg)
                summary = trained_summary(xcfg)
            t1 = time.perf_counter()
            key = {"weights": file_digest(adv_detector_run(xcfg).weights), "g": data.g_digest,
                   "real": real.position.tolist(), "sets": {a: f.source for a, f in attacked.items()},
                   "xai": OmegaConf.to_container(xcfg.xai, resolve=True),
                   "xai_version": xai_version(instantiate(xcfg.xai))}  # the maps' version (see xai_data.xai_version)
            cells = store.get(key, det, xai)
            if cells is None:
                d = load_adv_detector(xcfg, device)
                scored = score_sets(d, data, instantiate(xcfg.xai), real, attacked, xcfg.adv_data.batch_size)
                cells = store.put(key, [{**s.metrics(), "roc": s.roc()} for s in scored], det, xai)
            for c in cells:
                ours[row(spec, det), c["attack"], xai] = c["acc"]
                counts[row(spec, det), c["attack"], xai] = c["n_routed"]
                rows.append({"detector": row(spec, det), "model": det, "xai": xai,
                             **{k: v for k, v in c.items() if k != "roc"}})
            curves = {PINHASOV_ROW_HEADERS.get(c["attack"], c["attack"]): (*c["roc"], c["auc"])
                      for c in cells if c["roc"] is not None}
            if curves:
                images[f"roc/{det}/{xai}"] = roc_curves(
                    curves, out_dir / "roc" / f"{det}_{xai}.png",
                    f"{det} + {PINHASOV_XAI_HEADERS.get(xai, xai)}: Detect-ResNet50 ({CONFIG_NAMES[number]})")
            r["xai"][xai] = {"train": summary["metrics"], "crops": summary.get("crops"),
                             "backbone": summary.get("backbone_init"), "train_wall_s": t1 - t0,
                             "eval_wall_s": time.perf_counter() - t1}
    report["wall_s"] = time.perf_counter() - t_start

    paper_rows, xais = [row(spec, d) for d in detectors], list(spec.xai)
    marks = plan_marks(spec, clean)
    cells = pinhasov_xai_cells(ours, number, paper_rows, xais, marks, counts)
    table2 = pinhasov_table2_cells(precision, paper_rows, marks, intervals=True)
    other_dir = out_dir.parent / f"{'table4' if number == 3 else 'table3'}_{scale}{results_suffix}"
    found = findings(cells, other_dir, number, marks)
    report["findings"] = [f.as_dict() for f in found]
    report["marks"] = marks_record(marks)
    md, md2 = pinhasov_xai_markdown(cells, marks), pinhasov_table2_markdown(table2, marks)
    atomic_write_text(out_dir / f"{table}.md", md)
    atomic_write_text(out_dir / f"{table}.csv", long_csv(cells, ["detector", "attack", "xai"]))
    atomic_write_json(out_dir / "cells.json", cells)
    atomic_write_text(out_dir / "seed001_table2.md", md2)
    atomic_write_text(out_dir / "seed001_table2.csv", long_csv(table2, ["attack", "detector"]))
    atomic_write_json(out_dir / "detail.json", rows)
    atomic_write_json(out_dir / "report.json", report)
    images[table] = _heatmap(cells, out_dir / f"{table}.png", f"Seed 001 Table {number} ({CONFIG_NAMES[number]}): "
                             f"ours ({plan.data.name}, {scale})")
    tables = {f"seed001_{table}": (cells, ["detector", "attack", "xai"]),
              "seed001_table2": (table2, ["attack", "detector"])}
    log_wandb_tables(table, scale, out_dir, {**tables,
                                             f"seed001_{table}_detail": (rows, list(rows[0]) if rows else [])},
                     images, plan=plan)
    _report(say, report, md, md2, plan, number, out_dir, found)
    return Reproduced(out_dir, str(say), findings=tuple(found), tables=tables)


def _heatmap(cells: list[dict], path: Path, title: str) -> Path:
    keep = [c for c in cells if c["detector"] != "all"]
    rows = list(dict.fromkeys(f"{c['detector']} {PINHASOV_ROW_HEADERS.get(c['attack'], c['attack'])}" for c in keep))
    cols = list(dict.fromkeys(c["xai"] for c in keep))
    matrix = np.full((len(rows), len(cols)), np.nan)
    for c in keep:
        if c["ours"] is not None:
            matrix[rows.index(f"{c['detector']} {PINHASOV_ROW_HEADERS.get(c['attack'], c['attack'])}"),
                   cols.index(c["xai"])] = c["ours"]
    return grid_heatmap(rows, [PINHASOV_XAI_HEADERS.get(x, x) for x in cols], matrix, path, title)


def _by_cell(cells: list[dict]) -> dict[tuple[str, str, str], float | None]:
    return {(c["detector"], c["attack"], c["xai"]): c["ours"] for c in cells}


def _maps_beat_pgd_b(cells: list[dict], rows: list[str]) -> Finding:
    """Seed 001: d with g's maps beats d with zeroed maps (PGD-B) on the PGD set; holds in most (g, XAI) pairs."""
    by = _by_cell(cells)
    pairs = [(d, x) for (d, a, x), v in by.items() if d in rows and a == "pgd" and v is not None
             and by.get((d, "pgd_black", x)) is not None]
    wins = sum(by[d, "pgd", x] > by[d, "pgd_black", x] for d, x in pairs)
    gain = float(np.mean([by[d, "pgd", x] - by[d, "pgd_black", x] for d, x in pairs])) if pairs else None
    return Finding("maps_beat_pgd_b", "maps beat PGD-B (d with g's maps beats d with zeroed maps on PGD)",
                   f"in {wins}/{len(pairs)} (detector, XAI) pairs"
                   + (f" (mean gain {gain:+.3f})" if gain is not None else ""),
                   wins > len(pairs) / 2 if pairs else None, {"pairs": len(pairs), "wins": wins, "mean_gain": gain})


def _square_hardest(cells: list[dict], rows: list[str]) -> Finding:
    """Seed 001: Square is the attack d detects worst (lowest mean accuracy over g and XAI methods)."""
    by = _by_cell(cells)
    means = {a: [v for (d, aa, _), v in by.items() if d in rows and aa == a and v is not None]
             for a in PINHASOV_ATTACKS}
    means = {a: float(np.mean(v)) for a, v in means.items() if v}
    hardest = min(means, key=means.get) if means else None
    return Finding("square_hardest", "Square is the hardest attack for d",
                   f"hardest: {hardest} (" + ", ".join(f"{a} {v:.3f}" for a, v in means.items()) + ")",
                   hardest == "square" if "square" in means else None,
                   {"attack_means": means, "hardest_attack": hardest})


def _finetune_beats_head(cells: list[dict], other: list[dict] | None, number: int, rows: list[str]) -> Finding:
    """Seed 001: the finetuned d (Table 3) beats the head-only d (Table 4) per XAI column, on the mean of the rows'
    Average; holds in most columns. Needs the other table's cells."""
    key, claim = "finetune_beats_head", "finetuned beats head-only"
    if other is None:
        return Finding(key, claim, "run the other table to compare", None, {})

    def totals(table: list[dict]) -> dict[str, float | None]:
        by = _by_cell(table)
        return {x: mean_or_none([by.get((d, "average", x)) for d in rows])
                for x in dict.fromkeys(c["xai"] for c in table if c["detector"] != "all")}

    ft, head = (totals(cells), totals(other)) if number == 3 else (totals(other), totals(cells))
    common = [x for x in ft if ft[x] is not None and head.get(x) is not None]
    wins = sum(ft[x] > head[x] for x in common)
    return Finding(key, claim, f"finetuned beats head-only in {wins}/{len(common)} XAI columns (mean of Average)",
                   wins > len(common) / 2 if common else None,
                   {"xai": len(common), "wins": wins, "finetuned": {x: ft[x] for x in common},
                    "head_only": {x: head[x] for x in common}})


def findings(cells: list[dict], other_dir: Path, number: int, marks: Marks | None = None) -> list[Finding]:
    """Seed 001's three claims checked on our cells, each over every g and over the g's reaching the clean-accuracy
    threshold: maps beat PGD-B, Square is the hardest attack, and (when the other table's results exist)
    finetuning beats head-only."""
    marks = marks or Marks()
    rows = [d for d in dict.fromkeys(c["detector"] for c in cells) if d != "all" and d not in marks.paper_only]
    other_path = other_dir / "cells.json"
    other = json.loads(other_path.read_text()) if other_path.is_file() else None
    return [*both_scopes(lambda rs: _maps_beat_pgd_b(cells, rs), rows, marks),
            *both_scopes(lambda rs: _square_hardest(cells, rs), rows, marks),
            *both_scopes(lambda rs: _finetune_beats_head(cells, other, number, rs), rows, marks)]


def _report(say: Lines, report: dict, md: str, md2: str, plan: DictConfig, number: int, out_dir: Path,
            found: list[Finding]) -> None:
    say(f"reproduce-table{number} ({report['scale']}): {report['wall_s']:.0f} s")
    for det, r in report["detectors"].items():
        g = r["g"]
        xai = [f"{x}: train {v['train_wall_s']:.0f} s, eval {v['eval_wall_s']:.0f} s" for x, v in r["xai"].items()]
        say(f"  {det}: g {g['wall_s']:.0f} s{' (reused)' if g['reused'] else ''}; attacked sets "
              f"{r['attacks_wall_s']:.0f} s; real crops g calls real {r['real']['routed']}/{r['real']['n']}, attacked "
              + ", ".join(f"{a} {v['routed']}/{v['n']}" for a, v in r["attacks"].items()) + "; " + "; ".join(xai))
    say(f"\nSeed 001, Table {number} — accuracy of Detect-ResNet50 ({CONFIG_NAMES[number]}) on real vs attacked "
          f"crops that g calls real ({plan.data.name}); PGD-B: maps replaced by zeros; Average over PGD, APGD, "
          "Square, NES; each cell: ours [Wilson 95 % interval over the crops d scored] / paper; — = not computed\n")
    say(md)
    say("Seed 001, Table 2 — share of attacked fake crops (F2F) and videos (Vid) the deepfake detector still calls "
          "fake; each cell: ours [Wilson 95 % interval] / paper\n")
    say(md2)
    say("Seed 001's findings, on these numbers (each over every g, and over the g's reaching the clean-accuracy "
        "threshold):")
    for line in finding_lines(found):
        say(f"  {line}")
    say(f"written: {out_dir}/table{number}.md, .csv, .png, seed001_table2.md, .csv, roc/*.png, detail.json, "
          "report.json")
