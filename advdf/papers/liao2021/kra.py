"""Seed 004's reproduction (Liao et al. 2021, the Key Region Attack): white-box KRA on the plan's detectors
(Table 1) and the transfer of KRA-PGD between them (Table 2).

    python -m advdf.papers.reproduce kra --scale smoke      (make reproduce-kra)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from advdf.errors import ConfigError
from advdf.jobs.attack import cache_for, run_attack, selected_positions
from advdf.jobs.common import build_datamodule, load_trained_detector, resolve_device
from advdf.jobs.plan import (
    compose_config,
    detector_overrides,
    ensure_trained,
    require_attack_configs,
    require_detectors,
)
from advdf.jobs.stages import barrier
from advdf.jobs.transfer import TransferSource, TransferTarget, transfer_matrix, write_matrix
from advdf.models.checkpoint import file_digest
from advdf.papers.liao2021.layout import (
    kra_table1_cells,
    kra_table1_markdown,
    kra_table2_cells,
    kra_table2_markdown,
)
from advdf.papers.marks import check_marks, clean_acc, marks_record, paper_only, plan_marks, row, runnable
from advdf.report.findings import Finding, both_scopes, finding_lines
from advdf.report.marks import Marks
from advdf.report.render import MISSING, Lines, Reproduced, long_csv
from advdf.report.wandb import log_wandb_tables
from advdf.utils.io import atomic_write_json, atomic_write_text, digest

log = logging.getLogger("advdf.reproduce")


def _check_kra_plan(spec: DictConfig) -> None:
    """Raise ConfigError for anything in ``reproduce`` that cannot run, before any work starts."""
    detectors = list(spec.detectors)
    check_marks(spec, detectors)
    require_detectors(runnable(spec, detectors))
    not_listed = [s for s in spec.sources if s not in detectors]
    if not_listed:
        raise ConfigError(f"reproduce.sources {not_listed} are not in reproduce.detectors")
    require_attack_configs([*spec.attacks, spec.transfer_attack])


def _perceptibility(source: TransferSource) -> dict[str, float]:
    """Mean PL0 (pixels) and PL2 (root mean square) of a cached set, re-checked against fresh clean images."""
    from advdf.attacks.kra import perceptibility

    pl0, pl2 = [], []
    for shard, clean, _ in source.checked_shards():
        p = perceptibility(shard["x_adv"], clean)
        pl0.append(p["pl0"])
        pl2.append(p["pl2"])
    return {"pl0": torch.cat(pl0).mean().item(), "pl2": torch.cat(pl2).mean().item()}


def _few_pixels_high_success(ours: dict[tuple[str, str, str], dict[str, float]], rows: list[str]) -> Finding:
    """Seed 004: KRA perturbs only a key region (few pixels, small PL0) and still succeeds (high ASR); holds when
    the mean ASR over Table 1's rows is at least 0.9 and the mean PL0 at most 0.1."""
    picked = [m for (_, _, n), m in ours.items() if n in rows]
    asr = [m["asr"] for m in picked if m.get("asr") is not None and m["asr"] == m["asr"]]  # NaN: clean acc 0
    pl0 = [m["pl0"] for m in picked if m.get("pl0") is not None]
    mean_asr = sum(asr) / len(asr) if asr else None
    mean_pl0 = sum(pl0) / len(pl0) if pl0 else None
    text = (f"mean ASR {MISSING if mean_asr is None else f'{mean_asr:.3f}'} (holds at ≥ 0.9), mean PL0 "
            f"{MISSING if mean_pl0 is None else f'{100 * mean_pl0:.2f}%'} (holds at ≤ 10%)")
    holds = None if mean_asr is None or mean_pl0 is None else mean_asr >= 0.9 and mean_pl0 <= 0.1
    return Finding("kra_few_pixels_high_success", "KRA changes few pixels (PL0 small) and keeps success high",
                   text, holds, {"mean_asr": mean_asr, "mean_pl0": mean_pl0})


def kra_findings(ours: dict[tuple[str, str, str], dict[str, float]], rows: list[str],
                 marks: Marks | None = None) -> list[Finding]:
    """Seed 004's finding on Table 1 (``ours`` keyed by (attack, dataset, paper row)), over every source and over
    the sources reaching the clean-accuracy threshold."""
    return both_scopes(lambda rs: _few_pixels_high_success(ours, rs), rows, marks or Marks())


def reproduce_kra(scale: str, overrides: list[str], results_suffix: str = "") -> Reproduced:
    """Seed 004's Tables 1 (white-box KRA) and 2 (transfer of KRA-PGD); returns where it wrote its outputs and its
    report. Outputs go to ``<results>/kra_<scale><results_suffix>/`` (a data seed's own directory, see
    :mod:`advdf.papers.seeds`)."""
    say = Lines()
    from advdf.attacks.kra import KRA

    base = [f"experiment=kra_{scale}", *overrides]
    plan = compose_config("attack", base)
    spec = plan.reproduce
    _check_kra_plan(spec)
    out_dir = Path(plan.paths.results_dir) / f"kra_{scale}{results_suffix}"
    report: dict = {"scale": scale, "overrides": overrides, "data": plan.data.name, "detectors": {},
                    "paper_only": paper_only(spec)}
    detectors, sources = runnable(spec, spec.detectors), runnable(spec, spec.sources)
    t_start = time.perf_counter()
    weights: dict[str, list[str]] = {}  # per detector, the override naming its trained run's weights
    clean: dict[str, float | None] = {}
    for det in detectors:
        t0 = time.perf_counter()
        trained = ensure_trained([*base, *detector_overrides(spec, det), *spec.detectors[det]])
        weights[det] = [trained.override()]
        clean[det] = clean_acc(trained.metrics)
        report["detectors"][det] = {"row": row(spec, det), "train": trained.metrics,
                                    "train_wall_s": time.perf_counter() - t0, "attacks": {}}
    barrier("KRA's attacks")
    report["train_wall_s"] = time.perf_counter() - t_start

    t_attacks = time.perf_counter()
    ours: dict[tuple[str, str, str], dict[str, float]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    sets: dict[str, TransferSource] = {}
    cfgs: dict[str, DictConfig] = {}
    datamodules = {}
    for det in detectors:
        cfgs[det] = compose_config("attack", [*base, *detector_overrides(spec, det), *weights[det]])
        datamodules[det] = build_datamodule(cfgs[det])
    for det in sources:
        device = resolve_device(cfgs[det].device)
        detector = load_trained_detector(cfgs[det], device)
        dataset = datamodules[det].dataset(cfgs[det].split)
        positions = selected_positions(dataset, cfgs[det].limit)
        for name in dict.fromkeys([*spec.attacks, spec.transfer_attack]):
            cfg = compose_config("attack", [*base, *detector_overrides(spec, det), f"attack={name}", *weights[det]])
            t1 = time.perf_counter()
            summary = run_attack(cfg, cfg.attack, datamodule=datamodules[det])
            built = instantiate(cfg.attack)(model=detector)  # the resolved budget and norm, for the re-check
            source = TransferSource(det, cache_for(cfg, cfg.attack, dataset, positions), dataset, built.eps,
                                    built.norm)
            row_metrics = {"acc_clean": summary["acc_clean"], "acc_attack": summary["acc_adv"], "asr": summary["asr"],
                           **_perceptibility(source), "time_s": summary["time_s"] / summary["n"]}
            if name in spec.attacks:
                ours[(name, spec.paper_dataset, row(spec, det))] = row_metrics
                counts[(name, spec.paper_dataset, row(spec, det))] = summary["n"]
            if name == spec.transfer_attack:
                sets[det] = source
            report["detectors"][det]["attacks"][name] = {
                **summary, **row_metrics, "wall_s": time.perf_counter() - t1,
                **({"layers": built.layers or "auto", "min_map_side": built.min_map_side}
                   if isinstance(built, KRA) else {})}
    report["attacks_wall_s"] = time.perf_counter() - t_attacks

    t_transfer = time.perf_counter()
    transfer = _transfer_cells(spec, sources, cfgs, datamodules, sets, out_dir)
    write_matrix(transfer, out_dir, stem="transfer")
    report["transfer"] = transfer
    report["transfer_wall_s"] = time.perf_counter() - t_transfer
    report["wall_s"] = time.perf_counter() - t_start

    marks = plan_marks(spec, clean)
    table1 = kra_table1_cells(ours, marks, counts, dataset=spec.paper_dataset)
    selfs = {c["target"]: c for c in transfer if c["source"] == c["target"]}
    table2 = kra_table2_cells({(row(spec, c["source"]), row(spec, c["target"])): c for c in transfer},
                              {row(spec, t): c["acc_clean"] for t, c in selfs.items()}, marks,
                              clean_n={row(spec, t): c.get("n") for t, c in selfs.items()})
    found = kra_findings(ours, [row(spec, d) for d in sources], marks)
    report["findings"] = [f.as_dict() for f in found]
    report["marks"] = marks_record(marks)
    md1, md2 = kra_table1_markdown(table1, marks), kra_table2_markdown(table2, marks)
    atomic_write_text(out_dir / "table1.md", md1)
    atomic_write_text(out_dir / "table2.md", md2)
    atomic_write_text(out_dir / "table1.csv", long_csv(table1, ["attack", "dataset", "network"]))
    atomic_write_text(out_dir / "table2.csv", long_csv(table2, ["source", "target"]))
    atomic_write_json(out_dir / "report.json", report)
    tables = {"kra_table1": (table1, ["attack", "dataset", "network"]), "kra_table2": (table2, ["source", "target"])}
    log_wandb_tables("kra", scale, out_dir, tables, plan=plan)
    n = next(iter(next(iter(report["detectors"].values()))["attacks"].values()), {}).get("n", 0)
    say(_headline_kra(report))
    say(f"\nSeed 004, Table 1 — white-box KRA; ours: {plan.data.name}, {n} test frames, in the rows of "
          f"{spec.paper_dataset}; each cell: ours / paper (Wilson 95 % intervals of the accuracies in table1.csv); "
          "— = not computed (ours) or not in the paper\n")
    say(md1)
    say("PL0: share of pixels changed (any channel); PL2: root mean square of the perturbation on [0, 1]; "
          "Time: attack seconds per image\n")
    say(f"Seed 004, Table 2 — transfer of {spec.transfer_attack}: accuracy of the target and ATR = "
          "ASR_target / ASR_source; rows: source (crafted on), columns: target; each cell: ours / paper "
          "(intervals in table2.csv)\n")
    say(md2)
    say("Seed 004's finding, on these numbers (over every source, and over the sources reaching the clean-accuracy "
        "threshold):")
    for line in finding_lines(found):
        say(f"  {line}")
    say(f"written: {out_dir}/table1.md, table1.csv, table2.md, table2.csv, transfer.md, transfer.csv, report.json")
    return Reproduced(out_dir, str(say), findings=tuple(found), tables=tables)


def _transfer_cells(spec: DictConfig, sources: list[str], cfgs: dict[str, DictConfig], datamodules: dict,
                    sets: dict[str, TransferSource], out_dir: Path) -> list[dict]:
    """The transfer matrix, reused from ``out_dir`` when its inputs (sets, weights, data) are unchanged."""
    from advdf.jobs.transfer import TRANSFER_VERSION

    key = {"transfer_version": TRANSFER_VERSION,
           "sets": {d: str(s.cache.directory) for d, s in sets.items()},
           "targets": {d: {"weights_sha256": file_digest(c.checkpoint),
                           "rows": [r["row"] for r in datamodules[d].dataset(c.split).rows]}
                       for d, c in cfgs.items()}}
    path = out_dir / "transfer_cache" / f"{digest(key)}.json"
    if path.is_file():
        log.info("reusing transfer matrix %s", path)
        return json.loads(path.read_text())
    targets = [TransferTarget(d, load_trained_detector(c, resolve_device(c.device)), datamodules[d].dataset(c.split))
               for d, c in cfgs.items()]
    device = resolve_device(next(iter(cfgs.values())).device)
    cells = transfer_matrix([sets[d] for d in sources], targets,
                            batch_size=next(iter(cfgs.values())).batch_size, device=device)
    atomic_write_json(path, cells)
    return cells


def _headline_kra(report: dict) -> str:
    lines = [f"reproduce-kra ({report['scale']}): {report['wall_s']:.0f} s (training/reuse "
             f"{report['train_wall_s']:.0f} s, attacks {report['attacks_wall_s']:.0f} s, transfer "
             f"{report['transfer_wall_s']:.0f} s)"]
    for det, r in report["detectors"].items():
        atk = ", ".join(f"{a}: acc {s['acc_adv']:.3f}, {s['grad_calls_mean']:.0f} grad calls/img "
                        f"({s['wall_s']:.0f} s{', cached' if not s['shards_run'] else ''})"
                        for a, s in r["attacks"].items())
        lines.append(f"  {det}: train {r['train_wall_s']:.0f} s" + (f"; {atk}" if atk else ""))
    return "\n".join(lines)
