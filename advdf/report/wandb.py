"""Long-format tables and figures of a reproduce run, logged to Weights & Biases (offline without a key)."""

from __future__ import annotations

from pathlib import Path

from advdf.report.render import CSV_EXTRA
from advdf.utils.logging_setup import default_wandb_mode


def log_wandb_tables(name: str, scale: str, out_dir: Path, tables: dict[str, tuple[list[dict], list[str]]],
                     images: dict[str, Path] | None = None) -> None:
    """Log long-format cell lists as W&B tables: ``{key: (cells, key columns)}``, each with its
    metric, ours and paper, the sample count, Wilson interval and row marks when the cells have them; and ``images``
    (PNG files) under their keys."""
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    run = wandb.init(project="advdf", job_type="reproduce", name=f"{name}-{scale}", dir=str(out_dir),
                     config={"scale": scale})
    try:
        for key, (cells, cols) in tables.items():
            columns = [*cols, *(k for k in ("metric", "ours", "paper", *CSV_EXTRA)
                                if cells and k in cells[0] and k not in cols)]
            run.log({key: wandb.Table(columns=columns, data=[[c.get(k) for k in columns] for c in cells])})
        if images:
            run.log({key: wandb.Image(str(path)) for key, path in images.items()})
    finally:
        run.finish()
