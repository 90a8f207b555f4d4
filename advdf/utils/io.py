"""Atomic writes: a killed run leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def digest(obj: Any, length: int = 12) -> str:
    """A short stable hash of a JSON-serializable object (cache keys)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


_SHA256: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256 of those bytes


def _stat_key(path: str | Path) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def remember_sha256(path: str | Path, sha256: str) -> None:
    """Note that ``path`` as it is now (size, modification time) hashes to ``sha256`` (its writer knows)."""
    _SHA256[_stat_key(path)] = sha256


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, remembered per (path, size, modification time) for the life of the process: a grid keys
    dozens of caches on one detector's weights, and a job that checks a set and then reads it hashes each shard
    once."""
    key = _stat_key(path)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]
