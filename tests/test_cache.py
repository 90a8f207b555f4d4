"""The adversarial-set cache: atomic shards, layout, completeness, corrupt shards named."""

import hashlib
import os

import pytest
import torch

from advdf.errors import DataError
from advdf.models.checkpoint import file_digest
from advdf.store.cache import CORE_FIELDS, AdversarialCache


def _shard(n: int = 3) -> dict:
    t = {k: torch.zeros(n) for k in CORE_FIELDS}
    t["x_adv"] = torch.rand(n, 3, 4, 4)
    return t


def test_key_names_the_directory_and_shards_complete_it(tmp_path):
    a = AdversarialCache.for_run(tmp_path, "pgd", {"eps": 0.1}, rows=6, shard_size=3)
    b = AdversarialCache.for_run(tmp_path, "pgd", {"eps": 0.2}, rows=6, shard_size=3)
    assert a.directory != b.directory and a.directory.name.startswith("pgd-")
    a.open()
    a.write_shard(1, _shard())
    assert a.missing_shards() == [0] and not a.complete
    a.write_shard(0, _shard())
    assert not a.complete  # every shard, but no summary yet
    a.write_summary({"n": 6})
    assert a.complete and a.summary() == {"n": 6}
    assert a.read_shard(0)["x_adv"].shape == (3, 3, 4, 4)
    assert not list(a.directory.glob(".*tmp"))


def test_a_set_of_a_fixed_number_of_shards_takes_any_row_count(tmp_path):
    cache = AdversarialCache(tmp_path / "set", {}, num_shards=2)
    cache.open()
    cache.write_shard(0, _shard(3))
    cache.write_shard(1, _shard(1))
    assert cache.missing_shards() == [] and cache.read_shard(1)["label"].shape == (1,)


def test_incomplete_shard_fields_are_refused(tmp_path):
    cache = AdversarialCache.for_run(tmp_path, "fgsm", {}, 1)
    cache.open()
    with pytest.raises(ValueError, match="lacks fields"):
        cache.write_shard(0, {"x_adv": torch.zeros(1)})


def test_corrupt_shard_is_named(tmp_path):
    cache = AdversarialCache.for_run(tmp_path, "fgsm", {}, 1)
    cache.open()
    cache.shard_path(0).write_bytes(b"truncated")
    with pytest.raises(DataError, match="cache shard .*shard_00000.* is bad: it has no record"):
        cache.read_shard(0)


def test_file_digest_is_remembered_but_follows_changes(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"one")
    assert file_digest(path) == hashlib.sha256(b"one").hexdigest() == file_digest(path)
    path.write_bytes(b"two!")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert file_digest(path) == hashlib.sha256(b"two!").hexdigest()
