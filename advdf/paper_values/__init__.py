"""Numbers transcribed from the source papers' tables, shipped with advdf so every table prints them beside ours."""

from __future__ import annotations

import csv
from importlib import resources


def load(name: str) -> list[dict[str, str]]:
    """Rows of ``<name>.csv`` (e.g. ``jin2025_table2_attack_defense_accuracy``)."""
    with resources.files(__package__).joinpath(f"{name}.csv").open(newline="") as f:
        return list(csv.DictReader(f))
