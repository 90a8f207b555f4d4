"""Evaluated table cells, saved as JSON under a key that names their inputs (a rerun recomputes nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from advdf.utils.io import atomic_write_json, digest


class CellStore:
    """Evaluated rows of one (detector, attack, kind), saved as JSON under a key that names their inputs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, *parts: str) -> Path:
        return self.directory / ("__".join(parts) + ".json")

    def get(self, key: dict, *parts: str) -> list[dict] | None:
        path = self._path(*parts)
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return saved["rows"] if saved.get("key") == digest(key) else None

    def put(self, key: dict, rows: list[dict], *parts: str) -> list[dict]:
        atomic_write_json(self._path(*parts), {"key": digest(key), "rows": rows})
        return rows
