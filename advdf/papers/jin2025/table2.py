"""Seed 000's Table 2 as a grid: detectors x white-box attacks x defense columns, and its adaptive counterpart.

    python -m advdf.papers.reproduce table2 --scale smoke      (make reproduce-table2)

Cost: one attack generation per (detector, attack, attacked model), never one per defense. Every non-adaptive
column (NA, smoothing, JPEG, DAE, HGD, TD) reads the set generated against the bare detector, the AugMix column the
set generated against the AugMix-trained detector. The adaptive grid (the attacker differentiates through the
defense: BPDA or a differentiable JPEG, the smoothing filters, the denoiser networks, EOT for randomness) needs one
set per (detector, attack, defense), since each defended model is a different attacked model.

Every stage resumes: detectors and denoisers are reused once trained (and continue from ``last.ckpt`` when killed),
adversarial sets from their shards, and evaluated cells from ``<results>/table2_<scale>/cells/``, keyed by the
cache they read and the defenses' configs and weights; a rerun of a finished grid recomputes nothing.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.defenses import AttackView, NoDefense
from advdf.errors import ConfigError
from advdf.jobs.attack import balanced_positions, cache_for, defense_target, run_attack
from advdf.jobs.common import build_datamodule, load_trained_detector, resolve_device
from advdf.jobs.evaluate import evaluate_cached, evaluate_clean
from advdf.jobs.plan import (
    Trained,
    compose_config,
    detector_overrides,
    ensure_run,
    ensure_variants,
    require_detectors,
)
from advdf.jobs.stages import barrier
from advdf.models.checkpoint import file_digest
from advdf.papers.jin2025.findings import table2_findings
from advdf.papers.jin2025.layout import (
    TABLE2_DEFENSES,
    TABLE2_HEADERS,
    cells_csv,
    table2_cells,
    table2_heatmaps,
    table2_latex,
    table2_markdown,
)
from advdf.papers.marks import check_marks, clean_acc, marks_record, paper_only, plan_marks, row, runnable
from advdf.report.findings import Finding, finding_lines
from advdf.report.marks import Marks, footnote_block
from advdf.report.plots import grid_heatmap
from advdf.report.render import MISSING, Lines, Reproduced, csv_value, fmt, grid_latex, rate_fields
from advdf.report.wandb import log_wandb_tables
from advdf.store.cells import CellStore
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("advdf.reproduce")


@dataclass
class Generations:
    """Attack generations of a grid: run now (at least one shard computed) or read back from the cache."""

    run: int = 0
    reused: int = 0

    def add(self, summary: dict) -> None:
        if summary["shards_run"]:
            self.run += 1
        else:
            self.reused += 1

    @property
    def total(self) -> int:
        return self.run + self.reused


def ensure_denoiser(overrides: list[str]) -> Trained:
    """Train the denoiser of ``overrides`` (``task=denoiser defense=... checkpoint=<detector weights>``) unless a
    finished run with these settings exists (see :func:`advdf.jobs.plan.ensure_run`)."""
    return ensure_run(compose_config("train", overrides))


def _check_plan(spec: DictConfig, eval_cfg: DictConfig) -> None:
    """Raise ConfigError for anything the plan names that cannot run, before any work starts."""
    check_marks(spec, spec.detectors)
    require_detectors(runnable(spec, spec.detectors))
    unknown = [a for a in [*spec.attacks, *spec.adaptive.attacks] if a not in eval_cfg.attacks]
    if unknown:
        raise ConfigError(f"reproduce attacks {unknown} are not in the evaluation's attacks "
                          f"({', '.join(eval_cfg.attacks)}); add them with +attack@attacks.<name>=<name>")
    bad = [c for c in spec.columns if c not in TABLE2_DEFENSES]
    if bad:
        raise ConfigError(f"reproduce.columns {bad} are not Table 2 columns ({', '.join(TABLE2_DEFENSES)})")
    missing = [c for c in [*spec.columns, *spec.adaptive.defenses]
               if c != "augmix" and c not in eval_cfg.defenses]
    if missing:
        raise ConfigError(f"reproduce columns {missing} have no defense in the evaluation config "
                          f"({', '.join(eval_cfg.defenses)}); add them with +defense@defenses.<name>=<name>")
    if "augmix" in spec.adaptive.defenses:
        raise ConfigError("reproduce.adaptive.defenses cannot hold augmix: it is a training method, not an input "
                          "transformation (its column already attacks the AugMix-trained detector)")


def _denoiser_overrides(spec: DictConfig) -> tuple[dict[str, list[str]], list[str]]:
    """Per learned column, its training overrides; and the evaluation overrides that add those columns.

    ``reproduce.denoisers`` maps a column to overrides of its defense config relative to the defense node (e.g.
    ``denoiser.encoder_widths=[...]``), applied alike when it is trained and when it is evaluated;
    ``reproduce.denoiser_training`` holds overrides of the training runs: ``all`` of them, then per column.
    """
    unknown = set(spec.denoiser_training) - {"all", *spec.denoisers}
    if unknown:
        raise ConfigError(f"reproduce.denoiser_training has keys {sorted(unknown)}; use 'all' or a column of "
                          f"reproduce.denoisers ({', '.join(spec.denoisers)})")
    train, evaluate = {}, []
    for name, relative in spec.denoisers.items():
        train[name] = ["task=denoiser", f"defense={name}", *(f"defense.{o}" for o in relative),
                       *spec.denoiser_training.get("all", []), *spec.denoiser_training.get(name, [])]
        evaluate += [f"+defense@defenses.{name}={name}", *(f"defenses.{name}.{o}" for o in relative)]
    return train, evaluate


def _grid_detector(det: str, ov: list[str], spec: DictConfig, eval_ov: list[str], store: CellStore,
                   gens: Generations, adaptive_gens: Generations, runs: dict[str, list[str]]) -> dict:
    """Every cell of one detector: its clean accuracies, the Table 2 rows and the adaptive rows; ``runs`` holds the
    overrides naming the trained weights of the base detector and its denoisers (``base``) and of the AugMix one."""
    timings: dict[str, float] = {}
    eval_cfg = compose_config("evaluate", [*ov, *eval_ov, *runs["base"]])
    aug_cfg = compose_config("evaluate", [*ov, *eval_ov, "variant=augmix", *runs.get("augmix", [])])
    device = resolve_device(eval_cfg.device)
    datamodule = build_datamodule(eval_cfg)
    dataset = datamodule.dataset(eval_cfg.split)
    positions = balanced_positions(dataset, spec.per_class, eval_cfg.seed)
    detector = load_trained_detector(eval_cfg, device)
    columns = [c for c in spec.columns if c != "augmix"]
    defenses = {c: instantiate(eval_cfg.defenses[c]).to(device) for c in columns}
    defense_keys = {c: defense_target(eval_cfg.defenses[c], c) for c in columns}
    aug_detector = load_trained_detector(aug_cfg, device) if "augmix" in spec.columns else None
    out: dict = {"n": len(positions), "rows": [], "adaptive": []}

    key = {"positions": positions, "weights": file_digest(eval_cfg.checkpoint), "defenses": defense_keys}
    out["clean"] = store.get(key, det, "clean") or store.put(
        key, evaluate_clean(eval_cfg, detector, defenses, dataset, positions, device), det, "clean")
    if aug_detector is not None:
        key = {"positions": positions, "weights": file_digest(aug_cfg.checkpoint)}
        out["clean"] += store.get(key, det, "clean-augmix") or store.put(
            key, evaluate_clean(aug_cfg, aug_detector, {"augmix": NoDefense()}, dataset, positions, device),
            det, "clean-augmix")

    t0 = time.perf_counter()
    for att in spec.attacks:
        for cfg, model, cols, kind in ((eval_cfg, detector, defenses, "main"),
                                       (aug_cfg, aug_detector, {"augmix": NoDefense()}, "augmix")):
            if model is None:
                continue
            attack_cfg = cfg.attacks[att]
            gens.add(run_attack(cfg, attack_cfg, datamodule=datamodule, detector=model, positions=positions))
            cache = cache_for(cfg, attack_cfg, dataset, positions)
            key = {"cache": str(cache.directory), "defenses": defense_keys if kind == "main" else "augmix"}
            rows = store.get(key, det, att, kind) or store.put(
                key, evaluate_cached(cfg, att, attack_cfg, cache, model, cols, dataset, device), det, att, kind)
            out["rows"] += rows
    timings["attacks_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for att in spec.adaptive.attacks:
        attack_cfg = eval_cfg.attacks[att]
        for col in spec.adaptive.defenses:
            conf = OmegaConf.merge(eval_cfg.defenses[col], {"adaptive": True})
            target = defense_target(conf, col)
            cache = cache_for(eval_cfg, attack_cfg, dataset, positions, target)
            key = {"cache": str(cache.directory)}
            rows = store.get(key, det, att, f"adaptive-{col}")
            if rows is None:
                defense = instantiate(conf).to(device)
                adaptive_gens.add(run_attack(eval_cfg, attack_cfg, datamodule=datamodule,
                                             detector=AttackView(detector, defense), positions=positions,
                                             target=target))
                # Scored with the exact defense (a real JPEG, not its surrogate) in front of the detector.
                rows = store.put(key, evaluate_cached(eval_cfg, att, attack_cfg, cache, detector, {col: defense},
                                                      dataset, device), det, att, f"adaptive-{col}")
            else:
                adaptive_gens.reused += 1
            out["adaptive"] += rows
    timings["adaptive_s"] = time.perf_counter() - t0
    out["timings"] = timings
    return out


def _adaptive_outputs(adaptive: list[dict], out_dir: Path, spec: DictConfig, scale: str, marks: Marks) -> str:
    """Write the adaptive grid (Markdown, CSV, LaTeX, heatmap); returns its Markdown."""
    cols = list(spec.adaptive.defenses)
    headers = [TABLE2_HEADERS[c] for c in cols]
    rows = list(dict.fromkeys(f"{c['detector']} / {c['attack']}" for c in adaptive))
    labels = {f"{c['detector']} / {c['attack']}": f"{marks.label(c['detector'])} / {c['attack']}" for c in adaptive}
    by = {(f"{c['detector']} / {c['attack']}", c["defense"]): c for c in adaptive}

    lines = ["| Detector / attack | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {labels[r]} | " + " | ".join(
            f"{fmt(by[r, c]['non_adaptive'])} → {fmt(by[r, c]['adaptive'])}" if (r, c) in by else MISSING
            for c in cols) + " |")
    markdown = "\n".join(lines) + "\n" + footnote_block(marks.footnotes(c["detector"] for c in adaptive))
    atomic_write_text(out_dir / "adaptive.md", markdown)
    buf = io.StringIO()
    fields = ["detector", "attack", "defense", "non_adaptive", "adaptive", "n", "lo", "hi", "model", "clean_acc",
              "below_threshold"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({**{k: csv_value(c.get(k)) for k in fields}, "detector": c["detector"], "attack": c["attack"],
                      "defense": c["defense"]} for c in adaptive)
    atomic_write_text(out_dir / "adaptive.csv", buf.getvalue())
    values = {(r, h): by[r, c]["adaptive"] if (r, c) in by else None
              for r in rows for c, h in zip(cols, headers, strict=True)}
    atomic_write_text(out_dir / "adaptive.tex", grid_latex(
        [labels[r] for r in rows], headers, {(labels[r], h): v for (r, h), v in values.items()},
        label="tab:table2-adaptive",
        caption=f"Accuracy under adaptive attacks (the attacker differentiates through the defense), {scale}."))
    matrix = np.array([[np.nan if values[r, h] is None else values[r, h] for h in headers] for r in rows])
    grid_heatmap(rows, headers, matrix, out_dir / "adaptive.png",
                 f"Adaptive attacks: accuracy of the defended detector ({scale})")
    return markdown


def _training_only(override: str) -> bool:
    """Overrides of the Lightning trainer (``trainer=gpu``, ``trainer.max_epochs=...``) steer the training stages;
    the evaluation config has no trainer."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "trainer" or key.startswith("trainer.")


def reproduce_table2(scale: str, overrides: list[str], results_suffix: str = "") -> Reproduced:
    """Seed 000's Table 2 (and the adaptive grid) at ``scale``; returns where it wrote its outputs and its report.

    ``overrides`` reach every stage; trainer overrides only the training ones (detectors and denoisers). Outputs go
    to ``<results>/table2_<scale><results_suffix>/`` (a data seed's own directory, see :mod:`advdf.papers.seeds`).
    """
    say = Lines()
    train_base = [f"experiment=table2_{scale}", *overrides]
    base = [o for o in train_base if not _training_only(o)]
    plan = compose_config("evaluate", base)
    spec = plan.reproduce
    train_ov, eval_ov = _denoiser_overrides(spec)
    _check_plan(spec, compose_config("evaluate", [*base, *eval_ov]))
    out_dir = Path(plan.paths.results_dir) / f"table2_{scale}{results_suffix}"
    store = CellStore(out_dir / "cells")
    gens, adaptive_gens = Generations(), Generations()
    report: dict = {"scale": scale, "overrides": overrides, "data": plan.data.name, "detectors": {},
                    "paper_only": paper_only(spec)}
    ours: dict[tuple[str, str, str], float] = {}
    counts: dict[tuple[str, str, str], int] = {}
    clean: dict[str, dict[str, float | None]] = {"base": {}, "augmix": {}}
    adaptive: list[dict] = []
    detectors = runnable(spec, spec.detectors)  # the paper-scale-only ones are neither trained nor attacked
    t_start = time.perf_counter()
    from_base = spec.get("augmix_from_base")
    variants = ["base", "augmix"] if "augmix" in spec.columns else ["base"]
    # every detector, then every denoiser, before any attack: a staged run trains each stage in one wave
    trained_all, denoisers_all, walls = {}, {}, {}
    for det in detectors:
        t0 = time.perf_counter()
        trained_all[det] = ensure_variants([*train_base, *detector_overrides(spec, det), *spec.detectors[det]],
                                           variants, None if from_base is None else list(from_base))
        walls[det] = {"detectors": time.perf_counter() - t0}
    barrier("Table 2's denoisers")
    for det in detectors:
        t0 = time.perf_counter()
        train = [*train_base, *detector_overrides(spec, det), trained_all[det]["base"].override()]
        denoisers_all[det] = {n: ensure_denoiser([*train[:-1], *o, train[-1]]) for n, o in train_ov.items()}
        walls[det]["denoisers"] = time.perf_counter() - t0
    barrier("Table 2's attacks")
    for det in detectors:
        name = row(spec, det)
        ov = [*base, *detector_overrides(spec, det)]
        t0 = time.perf_counter()
        trained, denoisers = trained_all[det], denoisers_all[det]
        for v, t in trained.items():
            clean[v][det] = clean_acc(t.metrics)
        runs = {v: [t.override()] for v, t in trained.items()}
        runs["base"] += [t.override(f"defenses.{n}.checkpoint") for n, t in denoisers.items()]
        grid = _grid_detector(det, ov, spec, eval_ov, store, gens, adaptive_gens, runs)
        for r in grid["rows"]:
            ours[(name, r["attack"], r["defense"])] = r["f2f"]
            counts[(name, r["attack"], r["defense"])] = r.get("n")
        for r in grid["adaptive"]:
            adaptive.append({"detector": name, "attack": r["attack"], "defense": r["defense"],
                             "non_adaptive": ours.get((name, r["attack"], r["defense"])), "adaptive": r["f2f"],
                             "ours": r["f2f"], **rate_fields(r["f2f"], r.get("n"))})
        report["detectors"][det] = {
            "row": name, "train": {v: t.metrics for v, t in trained.items()},
            "denoisers": {n: t.metrics for n, t in denoisers.items()}, "n": grid["n"],
            "clean": {r["defense"]: r["f2f"] for r in grid["clean"]},
            "wall_s": {**walls[det], **grid["timings"]}}
        log.info("table2: %s done (%.0f s)", det, time.perf_counter() - t0)
    report["wall_s"] = time.perf_counter() - t_start
    non_adaptive_columns = len(spec.columns)
    report["generations"] = {
        "run": gens.run, "reused": gens.reused, "total": gens.total,
        "naive": len(detectors) * len(spec.attacks) * non_adaptive_columns,
        "adaptive_run": adaptive_gens.run, "adaptive_reused": adaptive_gens.reused}
    marks = plan_marks(spec, clean["base"])
    for c in adaptive:
        c.update(marks.fields(c["detector"]))
    augmix_clean = {row(spec, d): a for d, a in clean["augmix"].items()}
    cells = table2_cells(ours, marks, counts, augmix_clean)
    markdown = table2_markdown(cells, marks=marks)
    atomic_write_text(out_dir / "table2.md", markdown)
    atomic_write_text(out_dir / "table2.csv", cells_csv(cells))
    n = next(iter(report["detectors"].values()), {}).get("n", 0)
    atomic_write_text(out_dir / "table2.tex", table2_latex(
        cells, caption=f"Accuracy on attacked test sets ({plan.data.name}, {scale}, {n} frames), ours / paper.",
        marks=marks))
    table2_heatmaps(cells, out_dir / "table2.png", f"Seed 000 Table 2 ({plan.data.name}, {scale})")
    adaptive_md = _adaptive_outputs(adaptive, out_dir, spec, scale, marks) if adaptive else ""
    found = table2_findings(ours, [row(spec, d) for d in detectors], marks)
    report["findings"] = [f.as_dict() for f in found]
    report["marks"] = marks_record(marks)
    report["augmix_clean_acc"] = augmix_clean
    atomic_write_json(out_dir / "report.json", report)
    tables = {"table2": (cells, ["detector", "attack", "defense"]),
              **({"table2_adaptive": (adaptive, ["detector", "attack", "defense"])} if adaptive else {})}
    log_wandb_tables("table2", scale, out_dir, {
        "table2": (cells, ["detector", "attack", "defense"]),
        **({"table2_adaptive": (adaptive, ["detector", "attack", "defense", "non_adaptive", "adaptive"])}
           if adaptive else {})}, plan=plan)
    _summary(say, report, table2_markdown(cells, only_computed_rows=True, marks=marks), adaptive_md, out_dir,
             found, marks)
    return Reproduced(out_dir, str(say), findings=tuple(found), tables=tables)


def _summary(say: Lines, report: dict, markdown: str, adaptive_md: str, out_dir: Path, found: list[Finding],
             marks: Marks) -> None:
    g = report["generations"]
    say(f"reproduce-table2 ({report['scale']}): {report['wall_s']:.0f} s")
    for det, r in report["detectors"].items():
        w = r["wall_s"]
        say(f"  {det}: clean acc {r['clean'].get('na', float('nan')):.3f} on {r['n']} frames; "
              + ", ".join(f"{k} {v:.0f} s" for k, v in w.items()))
    say(f"\nattack generations: {g['total']} ({g['run']} run now, {g['reused']} read from the cache), one per "
          f"detector x attack x attacked model; a generation per defense column would be {g['naive']}. "
          f"Adaptive: {g['adaptive_run']} run now, {g['adaptive_reused']} reused (one per detector x attack x "
          "defense).")
    say("\nSeed 000, Table 2 — accuracy on attacked test sets; each cell: ours / paper (Wilson 95 % intervals in "
          "table2.csv); — = not computed (rows not computed at all are in table2.md only)\n")
    say(markdown)
    if adaptive_md:
        say("Adaptive attacks — accuracy of the defended detector; each cell: non-adaptive → adaptive (the attacker "
              "differentiates through the defense)\n")
        say(adaptive_md)
    columns = [c for c in TABLE2_DEFENSES if any(c in r["clean"] for r in report["detectors"].values())]
    say("Clean accuracy under each defense column (a defense that leaves the detector at one class scores about "
          "0.500 on these balanced sets, attacked or not)\n")
    say("| Detector | " + " | ".join(TABLE2_HEADERS.get(c, c) for c in columns) + " |")
    say("|---|" + "---:|" * len(columns))
    for r in report["detectors"].values():
        say(f"| {marks.label(r['row'])} | "
            + " | ".join(f"{r['clean'][c]:.3f}" if c in r["clean"] else MISSING for c in columns) + " |")
    say()
    say("Seed 000's findings, on these numbers (each over every detector, and over the detectors reaching the "
        "clean-accuracy threshold):")
    for line in finding_lines(found):
        say(f"  {line}")
    say(f"written: {out_dir}/table2.md, table2.csv, table2.tex, table2.png, adaptive.md, adaptive.csv, "
          "adaptive.tex, adaptive.png, report.json")
