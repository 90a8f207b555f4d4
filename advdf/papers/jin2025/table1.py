"""Seed 000's Table 1 (clean accuracy of the nine detectors, Base and AugMix) and seed 001's Table 1 (its two
detectors per true class): every detector is trained once here and reused by the other reproduce targets.

    python -m advdf.papers.reproduce table1 --scale smoke   (make reproduce-table1)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from advdf.errors import ConfigError
from advdf.jobs.plan import AUGMENT, compose_config, detector_overrides, ensure_variants, require_detectors
from advdf.jobs.stages import barrier
from advdf.papers.jin2025.layout import TABLE1_HEADERS, table1_cells, table1_markdown
from advdf.papers.marks import (
    check_marks,
    clean_acc,
    marks_record,
    paper_only,
    plan_marks,
    row,
    runnable,
    test_count,
)
from advdf.papers.pinhasov2024.layout import pinhasov_table1_cells, pinhasov_table1_markdown
from advdf.report.findings import Finding, both_scopes, finding_lines
from advdf.report.plots import ours_vs_paper_bars
from advdf.report.render import MISSING, Lines, Reproduced, long_csv
from advdf.report.wandb import log_wandb_tables
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("advdf.reproduce")


def _check_training_plan(spec: DictConfig, groups: tuple[str, ...]) -> None:
    """Raise ConfigError for detectors in ``spec.<group>`` that cannot be built, before any training starts."""
    names = list(dict.fromkeys(d for g in groups for d in spec[g]))
    check_marks(spec, names)
    require_detectors(runnable(spec, names))
    bad = [v for v in spec.variants if v not in AUGMENT]
    if bad:
        raise ConfigError(f"reproduce.variants {bad} unknown; choose from {sorted(AUGMENT)}")


def _seed000_marks(spec: DictConfig, runs: dict):
    """Seed 000's Table 1 marks: a row is marked when any of its variants is below the threshold; the footnote
    names each variant's accuracy."""
    clean, detail = {}, {}
    for det in runnable(spec, spec.detectors):
        accs = {v: clean_acc(runs[f"{det}/{v}"]["metrics"]) for v in spec.variants}
        known = [a for a in accs.values() if a is not None]
        clean[det] = min(known) if known else None
        detail[det] = ", ".join(f"{a:.3f} ({TABLE1_HEADERS[v]})" for v, a in accs.items() if a is not None)
    return plan_marks(spec, clean, detail)


AUGMIX_TOLERANCE = 0.02  # how far AugMix's mean clean accuracy may fall below Base's for the claim to hold


def _augmix_keeps_clean_acc(accuracy: dict[tuple[str, str], float | None], rows: list[str]) -> Finding:
    """Seed 000's Table 1: AugMix training keeps clean accuracy (the paper's AugMix column is within a few points
    of Base on every detector, higher on average); holds when the mean of AugMix - Base over the detectors with
    both is at least ``-AUGMIX_TOLERANCE``."""
    diffs = [accuracy[d, "augmix"] - accuracy[d, "base"] for d in rows
             if accuracy.get((d, "augmix")) is not None and accuracy.get((d, "base")) is not None]
    mean = sum(diffs) / len(diffs) if diffs else None
    return Finding("augmix_keeps_clean_acc", "AugMix training keeps clean accuracy",
                   f"mean AugMix - Base {MISSING if mean is None else f'{mean:+.3f}'} over {len(diffs)} detectors "
                   f"(holds at ≥ -{AUGMIX_TOLERANCE})", None if mean is None else mean >= -AUGMIX_TOLERANCE,
                   {"mean_diff": mean, "pairs": len(diffs)})


def reproduce_table1(scale: str, overrides: list[str], results_suffix: str = "") -> Reproduced:
    """Seed 000's Table 1 (clean accuracy, base and AugMix training) and seed 001's Table 1 (clean Vid/F2F per
    class); every detector is trained once and reused by the other reproduce targets. Outputs go to
    ``<results>/table1_<scale><results_suffix>/`` (a data seed's own directory, see :mod:`advdf.papers.seeds`)."""
    say = Lines()
    base = [f"experiment=table1_{scale}", *overrides]
    plan = compose_config("train", base)
    spec = plan.reproduce
    _check_training_plan(spec, ("detectors", "seed001"))
    out_dir = Path(plan.paths.results_dir) / f"table1_{scale}{results_suffix}"
    report: dict = {"scale": scale, "overrides": overrides, "data": plan.data.name, "runs": {},
                    "paper_only": paper_only(spec)}
    t_start = time.perf_counter()
    seed000, seed001_dets = runnable(spec, spec.detectors), runnable(spec, spec.seed001)
    jobs = [(det, list(spec.variants), list(spec.detectors[det])) for det in seed000]
    jobs += [(det, ["base"], list(spec.seed001[det])) for det in seed001_dets if det not in seed000]
    from_base = spec.get("augmix_from_base")
    for i, (det, variants, train_overrides) in enumerate(jobs, 1):
        log.info("[%d/%d] %s (%s)", i, len(jobs), det, ", ".join(variants))
        trained = ensure_variants([*base, *detector_overrides(spec, det), *train_overrides], variants,
                                  None if from_base is None else list(from_base))
        for variant, t in trained.items():
            report["runs"][f"{det}/{variant}"] = {"metrics": t.metrics, "reused": t.reused,
                                                  "run": str(t.directory), "wall_s": t.wall_s}
    barrier("Table 1")
    report["wall_s"] = time.perf_counter() - t_start

    runs = report["runs"]
    metrics = {(det, v): runs[f"{det}/{v}"]["metrics"] for det in seed000 for v in spec.variants}
    accuracy = {(row(spec, d), v): clean_acc(m) for (d, v), m in metrics.items()}  # seed 000's detectors only
    counts = {(row(spec, d), v): test_count(m) for (d, v), m in metrics.items()}
    seed001 = {row(spec, det): {k.removeprefix("test/"): v for k, v in runs[f"{det}/base"]["metrics"].items()}
               for det in seed001_dets}
    marks0 = _seed000_marks(spec, runs)
    marks1 = plan_marks(spec, {det: clean_acc(runs[f"{det}/base"]["metrics"]) for det in seed001_dets},
                        among=spec.seed001)
    t1 = table1_cells({k: v for k, v in accuracy.items() if v is not None}, marks0, counts)
    p1 = pinhasov_table1_cells(seed001, marks1, intervals=True)
    md1, mdp = table1_markdown(t1, marks0), pinhasov_table1_markdown(p1, marks1)
    report["marks"] = {"seed000_table1": marks_record(marks0), "seed001_table1": marks_record(marks1)}
    found = both_scopes(lambda rs: _augmix_keeps_clean_acc(accuracy, rs), [row(spec, d) for d in seed000], marks0)
    report["findings"] = [f.as_dict() for f in found]
    atomic_write_text(out_dir / "table1.md", md1)
    atomic_write_text(out_dir / "table1.csv", long_csv(t1, ["detector", "variant"]))
    atomic_write_text(out_dir / "seed001_table1.md", mdp)
    atomic_write_text(out_dir / "seed001_table1.csv", long_csv(p1, ["detector"]))
    atomic_write_json(out_dir / "report.json", report)
    ours_vs_paper_bars(t1, "detector", "variant", out_dir / "table1.png",
                       f"Seed 000 Table 1: clean accuracy, ours ({plan.data.name}, {scale}) and the paper's")
    tables = {"table1": (t1, ["detector", "variant"]), "seed001_table1": (p1, ["detector"])}
    log_wandb_tables("table1", scale, out_dir, tables, plan=plan)
    n_test = plan.data.test_per_class
    say(f"reproduce-table1 ({scale}): {report['wall_s']:.0f} s")
    for key, r in runs.items():
        m = r["metrics"]
        probes = ", ".join(f"{name} {m[f'test/acc_{key_}']:.3f}" for name, key_ in (("JPEG-75", "jpeg"),
                                                                                  ("noise 4/255", "noise"))
                           if f"test/acc_{key_}" in m)
        say(f"  {key}: test acc {m.get('test/acc', float('nan')):.3f}{f' ({probes})' if probes else ''} "
            f"({r['wall_s']:.0f} s{', reused' if r['reused'] else ''})")
    say(f"\nSeed 000, Table 1 — clean test accuracy ({plan.data.name}"
          f"{f', {n_test} real + {n_test} fake frames' if n_test else ''}); each cell: ours [Wilson 95 % interval] / "
          "paper; — = not computed\n")
    say(md1)
    say("Seed 001, Table 1 — clean detectors per true class: Vid = videos (majority vote over frames), "
          "F2F = frames; each cell: ours [Wilson 95 % interval] / paper\n")
    say(mdp)
    say("Seed 000's Table 1 finding, on these numbers (over every detector, and over the detectors whose every "
        "variant reaches the clean-accuracy threshold):")
    for line in finding_lines(found):
        say(f"  {line}")
    say(f"written: {out_dir}/table1.md, table1.csv, table1.png, seed001_table1.md, seed001_table1.csv, "
          "report.json")
    return Reproduced(out_dir, str(say), findings=tuple(found), tables=tables)
