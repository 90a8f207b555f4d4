"""Reproduce a paper table end to end from the same configs the entry points use.

    python -m advdf.pipelines.reproduce table2 --scale smoke [hydra overrides...]

Every stage is cached: trained detectors (``train_summary.json``), adversarial sets (complete caches) and the
prepared data are reused, so a rerun or a resumed run only does what is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from advdf.errors import AdvdfError
from advdf.pipelines.attack import run_attack
from advdf.pipelines.common import build_datamodule
from advdf.pipelines.evaluate import evaluate
from advdf.pipelines.tables import cells_csv, table2_cells, table2_markdown
from advdf.pipelines.train import train_job
from advdf.utils.entry import CONF_DIR, set_repo_root
from advdf.utils.io import atomic_write_json, atomic_write_text
from advdf.utils.logging_setup import default_wandb_mode

log = logging.getLogger("advdf.reproduce")


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` exactly as the Hydra entry point would."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=config_name):
        return compose(config_name=config_name, overrides=overrides)


def ensure_trained(overrides: list[str]) -> dict:
    """Train the detector of ``overrides`` unless a finished run already sits in its directory."""
    cfg = compose_config("train", overrides)
    summary = Path(cfg.paths.detector_dir) / "train_summary.json"
    if summary.is_file() and (Path(cfg.paths.detector_dir) / "detector.safetensors").is_file():
        log.info("reusing trained %s: %s", cfg.model.name, cfg.paths.detector_dir)
        import json

        return json.loads(summary.read_text())["metrics"]
    return train_job(cfg)


def reproduce_table2(scale: str, overrides: list[str]) -> Path:
    """Seed 000's Table 2 with what advdf has built; returns the results directory."""
    base = [f"experiment=table2_{scale}", *overrides]
    plan = compose_config("evaluate", base)
    out_dir = Path(plan.paths.results_dir) / f"table2_{scale}"
    ours: dict[tuple[str, str, str], float] = {}
    report: dict = {"scale": scale, "overrides": overrides, "detectors": {}}
    t_start = time.perf_counter()
    for det, train_overrides in plan.reproduce.detectors.items():
        ov = [*base, f"model={det}"]
        t0 = time.perf_counter()
        train_metrics = ensure_trained([*ov, *train_overrides])
        t_train = time.perf_counter() - t0
        attack_cfg, eval_cfg = compose_config("attack", ov), compose_config("evaluate", ov)
        datamodule = build_datamodule(attack_cfg)
        attacks = {}
        for name, conf in eval_cfg.attacks.items():
            t1 = time.perf_counter()
            summary = run_attack(attack_cfg, conf, datamodule=datamodule)
            attacks[name] = {**summary, "wall_s": time.perf_counter() - t1}
        t2 = time.perf_counter()
        rows = evaluate(eval_cfg, datamodule=datamodule)
        clean = {r["defense"]: r["f2f"] for r in rows if r["attack"] == "clean"}
        for r in rows:
            if r["attack"] != "clean" and "f2f" in r:
                ours[(det, r["attack"], r["defense"])] = r["f2f"]
        report["detectors"][det] = {"train": train_metrics, "train_wall_s": t_train, "attacks": attacks,
                                    "clean_acc": clean, "evaluate_wall_s": time.perf_counter() - t2}
    report["wall_s"] = time.perf_counter() - t_start

    cells = table2_cells(ours)
    markdown = table2_markdown(cells)
    atomic_write_text(out_dir / "table2.md", markdown)
    atomic_write_text(out_dir / "table2.csv", cells_csv(cells))
    atomic_write_json(out_dir / "report.json", report)
    _log_wandb(cells, scale, out_dir)
    print(_headline(report))
    print("\nSeed 000, Table 2 — accuracy on attacked test sets (eps 16/255); each cell: ours / paper; "
          "— = not computed (not built yet)\n")
    print(markdown)
    print(f"written: {out_dir}/table2.md, table2.csv, report.json")
    return out_dir


def _headline(report: dict) -> str:
    lines = [f"reproduce-table2 ({report['scale']}): {report['wall_s']:.0f} s"]
    for det, r in report["detectors"].items():
        atk = ", ".join(f"{a}: acc {s['acc_adv']:.3f} ({s['wall_s']:.0f} s)" for a, s in r["attacks"].items())
        lines.append(f"  {det}: clean acc {r['clean_acc'].get('na', float('nan')):.3f}, "
                     f"train {r['train_wall_s']:.0f} s; {atk}")
    return "\n".join(lines)


def _log_wandb(cells: list[dict], scale: str, out_dir: Path) -> None:
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    run = wandb.init(project="advdf", job_type="reproduce", name=f"table2-{scale}", dir=str(out_dir),
                     config={"scale": scale})
    try:
        columns = ["detector", "attack", "defense", "ours", "paper"]
        run.log({"table2": wandb.Table(columns=columns, data=[[c[k] for k in columns] for c in cells])})
    finally:
        run.finish()


TABLES = {"table2": reproduce_table2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--scale", choices=("smoke", "paper"), default="smoke")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every stage (e.g. trainer=gpu)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    set_repo_root()
    try:
        TABLES[args.table](args.scale, args.overrides)
    except AdvdfError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
