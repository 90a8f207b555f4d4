"""The adversarial-set cache: atomic shards, completeness, corrupt shards named."""

import pytest
import torch

from advdf.errors import DataError
from advdf.store.cache import SHARD_FIELDS, AdversarialCache


def _shard(n: int = 3) -> dict:
    t = {k: torch.zeros(n) for k in SHARD_FIELDS}
    t["x_adv"] = torch.rand(n, 3, 4, 4)
    return t


def test_key_names_the_directory_and_shards_complete_it(tmp_path):
    a = AdversarialCache.for_run(tmp_path, "pgd", {"eps": 0.1}, num_shards=2)
    b = AdversarialCache.for_run(tmp_path, "pgd", {"eps": 0.2}, num_shards=2)
    assert a.directory != b.directory and a.directory.name.startswith("pgd-")
    a.open()
    a.write_shard(1, _shard())
    assert a.missing_shards() == [0] and not a.complete
    a.write_shard(0, _shard())
    a.write_summary({"n": 6})
    assert a.complete and a.summary() == {"n": 6}
    assert a.read_shard(0)["x_adv"].shape == (3, 3, 4, 4)
    assert not list(a.directory.glob(".*tmp"))


def test_incomplete_shard_fields_are_refused(tmp_path):
    cache = AdversarialCache.for_run(tmp_path, "fgsm", {}, 1)
    cache.open()
    with pytest.raises(ValueError, match="lacks fields"):
        cache.write_shard(0, {"x_adv": torch.zeros(1)})


def test_corrupt_shard_is_named(tmp_path):
    cache = AdversarialCache.for_run(tmp_path, "fgsm", {}, 1)
    cache.open()
    cache.shard_path(0).write_bytes(b"truncated")
    with pytest.raises(DataError, match="corrupt cache shard .*shard_00000"):
        cache.read_shard(0)


def test_file_digest_is_remembered_but_follows_changes(tmp_path):
    import hashlib
    import os

    from advdf.models.checkpoint import file_digest

    path = tmp_path / "weights.bin"
    path.write_bytes(b"one")
    assert file_digest(path) == hashlib.sha256(b"one").hexdigest() == file_digest(path)
    path.write_bytes(b"two!")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert file_digest(path) == hashlib.sha256(b"two!").hexdigest()
