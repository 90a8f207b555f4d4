"""A sharded, lossless cache of adversarial sets.

One directory per (detector weights, attack config, data selection). Shards are safetensors files written
atomically (temp file + rename), so a killed run leaves only whole shards and a rerun skips them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from advdf.errors import DataError
from advdf.utils.io import atomic_write_json, digest

SHARD_FIELDS = ("x_adv", "position", "row", "label", "video", "clean_pred", "adv_pred", "success",
                "linf", "l2", "l0", "time_s", "grad_calls", "queries")


class AdversarialCache:
    """Shards ``shard_00000.safetensors``... plus ``key.json`` (what was attacked) and ``summary.json`` (done).

    Args:
        directory: the cache directory of one adversarial set.
        key: the JSON description the directory name was hashed from.
        num_shards: shards a complete set has.
    """

    fields: tuple[str, ...] = SHARD_FIELDS  # what every shard must hold

    def __init__(self, directory: str | Path, key: dict, num_shards: int) -> None:
        self.directory = Path(directory)
        self.key = key
        self.num_shards = num_shards

    @classmethod
    def for_run(cls, root: str | Path, label: str, key: dict, num_shards: int) -> AdversarialCache:
        return cls(Path(root) / f"{label}-{digest(key)}", key, num_shards)

    def shard_path(self, i: int) -> Path:
        return self.directory / f"shard_{i:05d}.safetensors"

    def has_shard(self, i: int) -> bool:
        return self.shard_path(i).is_file()

    def missing_shards(self) -> list[int]:
        return [i for i in range(self.num_shards) if not self.has_shard(i)]

    @property
    def complete(self) -> bool:
        return (self.directory / "summary.json").is_file() and not self.missing_shards()

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key_file = self.directory / "key.json"
        if not key_file.is_file():
            atomic_write_json(key_file, self.key)

    def write_shard(self, i: int, tensors: dict[str, torch.Tensor]) -> Path:
        missing = set(self.fields) - set(tensors)
        if missing:
            raise ValueError(f"shard lacks fields {sorted(missing)}")
        path = self.shard_path(i)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)
        return path

    def read_shard(self, i: int) -> dict[str, torch.Tensor]:
        path = self.shard_path(i)
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise DataError(f"corrupt cache shard {path}: {err}; delete it and rerun attack.py") from err

    def shards(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(self.num_shards):
            yield self.read_shard(i)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.directory / "summary.json", summary)

    def summary(self) -> dict:
        return json.loads((self.directory / "summary.json").read_text())
