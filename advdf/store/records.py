"""Per-shard records: what a shard held when it was written, and the check that it still does.

A shard ``shard_00003.safetensors`` is followed (written atomically, after it) by ``shard_00003.json``: the
digest of the set it belongs to, its index, its sha256, size in bytes, row count, the fields it holds (dtype and
shape) and who wrote it. A shard whose bytes no longer hash to its record (truncated, altered), whose record
names another set or index (copied from elsewhere), or that has no record (its writer died between the two
renames) is reported with the reason and treated as missing: the next run recomputes it.

Hashing a shard costs one read of it. A verified (path, size, modification time) is remembered for the life of
the process (:func:`advdf.utils.io.file_sha256`), so a job that checks a set and
then reads it hashes each shard once.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from advdf.utils.io import file_sha256


def fields_of(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
            for k, v in sorted(tensors.items())}


@dataclass(frozen=True)
class ShardRecord:
    """What one shard held when it was written.

    Attributes:
        set: digest of the key of the set the shard belongs to.
        index: the shard's index in its set.
        sha256: digest of the shard file's bytes.
        bytes: the file's size.
        rows: samples in the shard (the first dimension of every field).
        fields: per field, its dtype and shape.
        writer: host and pid of the process that wrote it (and any extra notes of the caller).
    """

    set: str
    index: int
    sha256: str
    bytes: int
    rows: int
    fields: dict[str, dict]
    writer: dict

    @staticmethod
    def writer_info(**extra) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), **extra}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> ShardRecord | None:
        """The record at ``path``; ``None`` when it is absent or not a record."""
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def shard_problem(path: Path, record: ShardRecord | None, set_digest: str, index: int,
                  rows: int | None) -> str | None:
    """Why the shard at ``path`` cannot be trusted (``None``: it can), without reading it when its size already
    disagrees with its record or its digest is remembered.

    Args:
        path: the shard file (it exists).
        record: its record, ``None`` when it has none.
        set_digest: digest of the key of the set being read.
        index: the index the shard is read as.
        rows: the rows the set's layout expects in it (``None``: not known).
    """
    if record is None:
        return "it has no record (its writer stopped before recording it, or it comes from elsewhere)"
    if record.set != set_digest or record.index != index:
        return f"its record is that of shard {record.index} of set {record.set}, not shard {index} of {set_digest}"
    if rows is not None and record.rows != rows:
        return f"it holds {record.rows} rows, the set's layout puts {rows} in it"
    size = path.stat().st_size
    if size != record.bytes:
        return f"it has {size} bytes, its record says {record.bytes} (truncated or rewritten)"
    sha = file_sha256(path)
    if sha != record.sha256:
        return f"its sha256 {sha[:12]}... differs from its record's {record.sha256[:12]}... (altered)"
    return None
