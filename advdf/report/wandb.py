"""Long-format tables and figures of a reproduce run, logged to Weights & Biases (offline without a key)."""

from __future__ import annotations

from pathlib import Path

from advdf.report.render import CSV_EXTRA
from advdf.utils.logging_setup import default_wandb_mode


def wandb_target(plan) -> dict:
    """W&B project and entity of a reproduce run: those of its plan's ``logger.wandb`` (conf/logger/wandb.yaml),
    else advdf's defaults (project ``advdf``, the account's default entity)."""
    node = plan.get("logger") if plan is not None else None
    node = node.get("wandb") if node is not None else None
    return {"project": (node.get("project") if node is not None else None) or "advdf",
            "entity": node.get("entity") if node is not None else None}


def log_wandb_tables(name: str, scale: str, out_dir: Path, tables: dict[str, tuple[list[dict], list[str]]],
                     images: dict[str, Path] | None = None, plan=None) -> None:
    """Log long-format cell lists as W&B tables: ``{key: (cells, key columns)}``, each with its
    metric, ours and paper, the sample count, Wilson interval and row marks when the cells have them; and ``images``
    (PNG files) under their keys. ``plan``: the reproduce run's composed config, whose ``logger.wandb`` names the
    project and entity (see :func:`wandb_target`)."""
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    run = wandb.init(**wandb_target(plan), job_type="reproduce", group=f"{name}-{scale}", name=f"{name}-{scale}",
                     dir=str(out_dir), config={"scale": scale})
    try:
        for key, (cells, cols) in tables.items():
            columns = [*cols, *(k for k in ("metric", "ours", "paper", *CSV_EXTRA)
                                if cells and k in cells[0] and k not in cols)]
            run.log({key: wandb.Table(columns=columns, data=[[c.get(k) for k in columns] for c in cells])})
        if images:
            run.log({key: wandb.Image(str(path)) for key, path in images.items()})
    finally:
        run.finish()
