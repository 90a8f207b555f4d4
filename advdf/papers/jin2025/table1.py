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
from advdf.jobs.plan import AUGMENT, compose_config, detector_overrides, ensure_trained, require_detectors
from advdf.papers.jin2025.layout import table1_cells, table1_markdown
from advdf.papers.pinhasov2024.layout import pinhasov_table1_cells, pinhasov_table1_markdown
from advdf.report.plots import ours_vs_paper_bars
from advdf.report.render import Lines, Reproduced, long_csv
from advdf.report.wandb import log_wandb_tables
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("advdf.reproduce")


def _check_training_plan(spec: DictConfig, groups: tuple[str, ...]) -> None:
    """Raise ConfigError for detectors in ``spec.<group>`` that cannot be built, before any training starts."""
    require_detectors(list(dict.fromkeys(d for g in groups for d in spec[g])))
    bad = [v for v in spec.variants if v not in AUGMENT]
    if bad:
        raise ConfigError(f"reproduce.variants {bad} unknown; choose from {sorted(AUGMENT)}")



def reproduce_table1(scale: str, overrides: list[str]) -> Reproduced:
    """Seed 000's Table 1 (clean accuracy, base and AugMix training) and seed 001's Table 1 (clean Vid/F2F per
    class); every detector is trained once and reused by the other reproduce targets."""
    say = Lines()
    base = [f"experiment=table1_{scale}", *overrides]
    plan = compose_config("train", base)
    spec = plan.reproduce
    _check_training_plan(spec, ("detectors", "seed001"))
    out_dir = Path(plan.paths.results_dir) / f"table1_{scale}"
    report: dict = {"scale": scale, "overrides": overrides, "data": plan.data.name, "runs": {}}
    t_start = time.perf_counter()
    jobs = [(det, variant, list(spec.detectors[det])) for det in spec.detectors for variant in spec.variants]
    jobs += [(det, "base", list(spec.seed001[det])) for det in spec.seed001
             if (det, "base") not in {(d, v) for d, v, _ in jobs}]
    for i, (det, variant, train_overrides) in enumerate(jobs, 1):
        log.info("[%d/%d] %s (%s)", i, len(jobs), det, variant)
        t0 = time.perf_counter()
        trained = ensure_trained([*base, *detector_overrides(spec, det), f"augment={AUGMENT[variant]}",
                                  *train_overrides])
        report["runs"][f"{det}/{variant}"] = {"metrics": trained.metrics, "reused": trained.reused,
                                              "run": str(trained.directory), "wall_s": time.perf_counter() - t0}
    report["wall_s"] = time.perf_counter() - t_start

    runs = report["runs"]
    accuracy = {(det, variant): runs[f"{det}/{variant}"]["metrics"].get("test/acc")  # seed 000's detectors only
                for det in spec.detectors for variant in spec.variants}
    seed001 = {det: {k.removeprefix("test/"): v for k, v in runs[f"{det}/base"]["metrics"].items()}
               for det in spec.seed001}
    t1, p1 = table1_cells({k: v for k, v in accuracy.items() if v is not None}), pinhasov_table1_cells(seed001)
    md1, mdp = table1_markdown(t1), pinhasov_table1_markdown(p1)
    atomic_write_text(out_dir / "table1.md", md1)
    atomic_write_text(out_dir / "table1.csv", long_csv(t1, ["detector", "variant"]))
    atomic_write_text(out_dir / "seed001_table1.md", mdp)
    atomic_write_text(out_dir / "seed001_table1.csv", long_csv(p1, ["detector"]))
    atomic_write_json(out_dir / "report.json", report)
    ours_vs_paper_bars(t1, "detector", "variant", out_dir / "table1.png",
                       f"Seed 000 Table 1: clean accuracy, ours ({plan.data.name}, {scale}) and the paper's")
    log_wandb_tables("table1", scale, out_dir, {"table1": (t1, ["detector", "variant"]),
                                                 "seed001_table1": (p1, ["detector"])})
    n_test = plan.data.test_per_class
    say(f"reproduce-table1 ({scale}): {report['wall_s']:.0f} s")
    for key, r in runs.items():
        say(f"  {key}: test acc {r['metrics'].get('test/acc', float('nan')):.3f} ({r['wall_s']:.0f} s"
              f"{', reused' if r['reused'] else ''})")
    say(f"\nSeed 000, Table 1 — clean test accuracy ({plan.data.name}"
          f"{f', {n_test} real + {n_test} fake frames' if n_test else ''}); each cell: ours / paper; "
          "— = not computed\n")
    say(md1)
    say("Seed 001, Table 1 — clean detectors per true class: Vid = videos (majority vote over frames), "
          "F2F = frames; each cell: ours / paper\n")
    say(mdp)
    say(f"written: {out_dir}/table1.md, table1.csv, table1.png, seed001_table1.md, seed001_table1.csv, "
          "report.json")
    return Reproduced(out_dir, str(say))
