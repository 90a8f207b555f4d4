"""Sharded, lossless, verified caches of per-sample tensors: adversarial sets, attribution maps.

One directory per key (what was computed, from what)::

    <label>-<digest of key>/
        key.json                 the key the directory name is hashed from (written once, checked on open)
        layout.json              rows, shard_size, batch_size: recorded by the first writer, used by all
        shard_00000.safetensors  the tensors of shard 0 (every one with the shard's row count first)
        shard_00000.json         its record: sha256, bytes, rows, fields, writer (see advdf.store.records)
        shard_00000.lock         held while shard 0 is computed (see advdf.store.locks)
        set.lock                 held while key.json / layout.json / summary.json are written
        summary.json             written once every shard verifies: the set is complete

Shards and records are written atomically (temp file + rename), the record after its shard, so a killed run
leaves whole shards and a rerun skips exactly the verified ones. A truncated, altered, unrecorded or foreign
shard is named in a warning and counted as missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from advdf.errors import DataError
from advdf.store.records import ShardRecord, fields_of, shard_problem
from advdf.utils.io import atomic_write_json, digest, remember_sha256

log = logging.getLogger(__name__)

# What every adversarial shard holds: the images, their identity, and what summaries are computed from.
CORE_FIELDS = ("x_adv", "position", "row", "label", "video", "success", "grad_calls", "queries",
               "clean_pred", "adv_pred", "linf", "l2", "l0", "time_s")
# The on-disk format (records, layout): part of every key, so a set of another format is never read as this one.
FORMAT_VERSION = 2
MISSING = "missing"  # the status of a shard that was never written
_WARNED: set[tuple[str, str]] = set()  # (shard path, reason) already warned about in this process


@dataclass(frozen=True)
class Layout:
    """How a set is cut into shards.

    Attributes:
        rows: samples in the whole set (``None``: not known, ``num_shards`` is given instead).
        shard_size: samples per shard (the last one may hold fewer).
        batch_size: samples per call inside a shard, when it changes what is computed (random draws per batch).
        shards: number of shards.
    """

    rows: int | None
    shard_size: int | None
    batch_size: int | None
    shards: int

    @classmethod
    def of(cls, rows: int | None, shard_size: int | None, batch_size: int | None = None,
           shards: int | None = None) -> Layout:
        """A layout of ``rows`` in shards of ``shard_size``, or of a given number of ``shards``."""
        if shards is None:
            if rows is None or not shard_size:
                raise ValueError("a layout needs rows and shard_size, or a number of shards")
            shards = math.ceil(rows / shard_size)
        return cls(rows, shard_size, batch_size, shards)

    def span(self, i: int) -> slice:
        """The sample positions (in the set's order) of shard ``i``."""
        if self.shard_size is None:
            raise ValueError("this layout has no shard_size")
        return slice(i * self.shard_size, min((i + 1) * self.shard_size, self.rows))

    def shard_rows(self, i: int) -> int | None:
        if self.rows is None or self.shard_size is None:
            return None
        s = self.span(i)
        return s.stop - s.start


class ShardedSet:
    """A sharded cache of per-sample tensors under ``directory``, identified by ``key``.

    Args:
        directory: the set's directory.
        key: the JSON description the directory name is hashed from.
        num_shards: shards a complete set has, for a set made without a ``shard_size``.
        rows: samples in the set; with ``shard_size``, the layout a first writer records.
        shard_size: samples per shard the caller asks for (a set already laid out keeps its own).
        batch_size: samples per call the caller asks for, recorded with the layout.
    """

    required: tuple[str, ...] = ()  # fields every shard must hold; any others are stored too
    rerun_hint = "rerun the job that writes it (it recomputes bad shards)"

    def __init__(self, directory: str | Path, key: dict, num_shards: int | None = None, *, rows: int | None = None,
                 shard_size: int | None = None, batch_size: int | None = None) -> None:
        self.directory = Path(directory)
        self.key = key
        self.key_digest = digest(key)
        self.requested = Layout.of(rows, shard_size, batch_size, num_shards)
        self._recorded: Layout | None = None

    @classmethod
    def for_run(cls, root: str | Path, label: str, key: dict, num_shards: int | None = None, **layout):
        """The set of ``key`` under ``root``, in ``<label>-<digest of key>`` (``layout``: rows, shard_size, ...)."""
        return cls(Path(root) / f"{label}-{digest(key)}", key, num_shards, **layout)

    # --- layout ---------------------------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        """The layout recorded by the set's first writer, else the requested one."""
        if self._recorded is None:
            path = self.directory / "layout.json"
            if not path.is_file():
                return self.requested
            try:
                recorded = Layout(**json.loads(path.read_text()))
            except (ValueError, TypeError) as err:
                raise DataError(f"cache layout {path} is unreadable ({err}); delete the set and rerun") from None
            if self.requested.rows is not None and recorded.rows != self.requested.rows:
                raise DataError(f"cache {self.directory} holds {recorded.rows} rows, its key names "
                                f"{self.requested.rows}; delete the set and rerun")
            if (recorded.shard_size, recorded.batch_size) != (self.requested.shard_size, self.requested.batch_size):
                log.info("cache %s keeps its recorded layout: shard_size=%s batch_size=%s (asked: shard_size=%s "
                         "batch_size=%s)", self.directory.name, recorded.shard_size, recorded.batch_size,
                         self.requested.shard_size, self.requested.batch_size)
            self._recorded = recorded
        return self._recorded

    @property
    def num_shards(self) -> int:
        return self.layout.shards

    def open(self) -> Layout:
        """Create the directory; record the key and (if no writer did yet) the layout. Returns the layout."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.set_lock():
            key_file = self.directory / "key.json"
            if key_file.is_file():
                try:
                    same = digest(json.loads(key_file.read_text())) == self.key_digest
                except ValueError:
                    same = False
                if not same:
                    raise DataError(f"cache {self.directory} holds another key.json than the set it is named "
                                    "after; delete the directory and rerun")
            else:
                atomic_write_json(key_file, self.key)
            if not (self.directory / "layout.json").is_file():
                atomic_write_json(self.directory / "layout.json", asdict(self.requested))
        return self.layout

    # --- paths and locks ------------------------------------------------------------------------------------
    def shard_path(self, i: int) -> Path:
        return self.directory / f"shard_{i:05d}.safetensors"

    def record_path(self, i: int) -> Path:
        return self.directory / f"shard_{i:05d}.json"

    def shard_lock(self, i: int) -> FileLock:
        """The lock held while shard ``i`` is computed (one process per shard)."""
        return FileLock(self.directory / f"shard_{i:05d}.lock")

    def set_lock(self) -> FileLock:
        """The lock held while the set's own files (key, layout, summary) are written."""
        return FileLock(self.directory / "set.lock")

    # --- verification ---------------------------------------------------------------------------------------
    def record(self, i: int) -> ShardRecord | None:
        return ShardRecord.read(self.record_path(i))

    def status(self, i: int) -> str | None:
        """``None`` for a verified shard, :data:`MISSING` for one never written, else why it is bad."""
        path = self.shard_path(i)
        if not path.is_file():
            return MISSING
        try:
            return shard_problem(path, self.record(i), self.key_digest, i, self.layout.shard_rows(i))
        except FileNotFoundError:  # replaced or removed meanwhile
            return MISSING

    def has_shard(self, i: int) -> bool:
        return self.status(i) is None

    def problems(self) -> dict[int, str]:
        """The shards that exist but fail verification, with the reason; each is warned about once."""
        bad = {}
        for i in range(self.num_shards):
            reason = self.status(i)
            if reason not in (None, MISSING):
                bad[i] = reason
                if (str(self.shard_path(i)), reason) not in _WARNED:
                    _WARNED.add((str(self.shard_path(i)), reason))
                    log.warning("cache shard %s is bad: %s; it counts as missing (%s)", self.shard_path(i), reason,
                                self.rerun_hint)
        return bad

    def missing_shards(self) -> list[int]:
        """Shards to (re)compute: never written, or failing verification (warned about)."""
        self.problems()
        return [i for i in range(self.num_shards) if self.status(i) is not None]

    @property
    def complete(self) -> bool:
        """summary.json is written and every shard verifies."""
        return (self.directory / "summary.json").is_file() and not self.missing_shards()

    # --- shards ---------------------------------------------------------------------------------------------
    def check_tensors(self, i: int, tensors: dict[str, torch.Tensor]) -> int:
        """The row count of shard ``i``'s ``tensors``; raises ValueError unless they hold the required fields and
        every one has that many rows first (the layout's count, when known)."""
        missing = set(self.required) - set(tensors)
        if missing:
            raise ValueError(f"shard {i} of {self.directory.name} lacks fields {sorted(missing)}")
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor) or v.ndim == 0]
        if bad:
            raise ValueError(f"shard {i} fields {sorted(bad)} are not per-sample tensors (batch dimension first)")
        expected = self.layout.shard_rows(i)
        counts = {k: v.shape[0] for k, v in tensors.items()}
        n = expected if expected is not None else counts[next(iter(sorted(counts)))]
        wrong = {k: c for k, c in counts.items() if c != n}
        if wrong:
            raise ValueError(f"shard {i} of {self.directory.name} has {n} rows, but fields {wrong} do not "
                             "(every field is per sample: the shard's row count first)")
        return n

    def write_shard(self, i: int, tensors: dict[str, torch.Tensor], **writer) -> Path:
        """Write shard ``i`` atomically, then its record (``writer``: extra notes for it)."""
        n = self.check_tensors(i, tensors)
        data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
        path = self.shard_path(i)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sha = hashlib.sha256(data).hexdigest()
        remember_sha256(path, sha)
        record = ShardRecord(self.key_digest, i, sha, len(data), n, fields_of(tensors),
                             ShardRecord.writer_info(**writer))
        atomic_write_json(self.record_path(i), record.to_json())
        return path

    def read_shard(self, i: int, fields: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """Shard ``i`` (or only ``fields`` of it), verified against its record; a bad shard is a DataError."""
        path = self.shard_path(i)
        reason = self.status(i)
        if reason is not None:
            raise DataError(f"cache shard {path} is {'missing' if reason == MISSING else 'bad: ' + reason}; "
                            f"{self.rerun_hint}")
        try:
            with safe_open(str(path), framework="pt") as f:
                names = list(f.keys()) if fields is None else list(fields)
                absent = [k for k in names if k not in f.keys()]
                if absent:
                    raise DataError(f"cache shard {path} lacks fields {absent}")
                return {k: f.get_tensor(k) for k in names}
        except (SafetensorError, OSError) as err:
            raise DataError(f"corrupt cache shard {path}: {err}; {self.rerun_hint}") from err

    def shards(self, fields: tuple[str, ...] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(self.num_shards):
            yield self.read_shard(i, fields)

    # --- summary --------------------------------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.directory / "summary.json", summary)

    def summary(self) -> dict:
        return json.loads((self.directory / "summary.json").read_text())


class AdversarialCache(ShardedSet):
    """An adversarial set: :data:`CORE_FIELDS` per sample, plus whatever else the attack reported (logits, clean
    logits, masks, ...)."""

    required = CORE_FIELDS
    rerun_hint = "rerun attack.py with the same settings (it recomputes bad shards)"
