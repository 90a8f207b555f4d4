"""The sharded store on its own: open field sets, per-shard records, bad shards named, layouts, shard locks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time

import pytest
import torch

from advdf.errors import DataError
from advdf.store.cache import CORE_FIELDS, AdversarialCache
from advdf.store.locks import fill_shards, finish
from advdf.utils import io as io_utils


def _shard(n: int, seed: int = 0, **extra) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = {k: torch.rand(n, generator=g) for k in CORE_FIELDS}
    t["x_adv"] = torch.rand(n, 3, 4, 4, generator=g)
    t["label"] = torch.randint(0, 2, (n,), generator=g)
    return {**t, **extra}


def _cache(tmp_path, key=None, rows=7, shard_size=3, **kw) -> AdversarialCache:
    cache = AdversarialCache.for_run(tmp_path, "pgd", key or {"eps": 0.1}, rows=rows, shard_size=shard_size, **kw)
    cache.open()
    return cache


def _fill(cache: AdversarialCache) -> dict[int, dict]:
    written = {}
    for i in range(cache.num_shards):
        written[i] = _shard(cache.layout.shard_rows(i), seed=i)
        cache.write_shard(i, written[i])
    cache.write_summary({"n": cache.layout.rows})
    return written


def _touch_later(path) -> None:
    """Move the modification time on, so no stat-keyed memory can mistake the file for its earlier self."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_extra_per_sample_fields_round_trip(tmp_path):
    cache = _cache(tmp_path, rows=3, shard_size=3)
    extra = {"logits": torch.randn(3, 2), "clean_logits": torch.randn(3, 2), "mask": torch.rand(3, 1, 4, 4) > 0.5,
             "zone_energy": torch.randn(3, 5).double(), "distortion": torch.randn(3, 3, 4, 4).half()}
    written = _shard(3, **extra)
    cache.write_shard(0, written)
    back = cache.read_shard(0)
    assert set(back) == set(written)
    for k, v in written.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    assert set(cache.read_shard(0, ("mask", "label"))) == {"mask", "label"}
    record = json.loads(cache.record_path(0).read_text())
    assert record["rows"] == 3 and record["fields"]["mask"] == {"dtype": "bool", "shape": [3, 1, 4, 4]}
    assert record["writer"]["pid"] == os.getpid() and record["index"] == 0


def test_every_field_must_have_the_shards_row_count(tmp_path):
    cache = _cache(tmp_path)
    with pytest.raises(ValueError, match=r"shard 0 .* has 3 rows, but fields \{'logits': 2\}"):
        cache.write_shard(0, _shard(3, logits=torch.zeros(2, 2)))
    with pytest.raises(ValueError, match=r"shard 2 .* has 1 rows"):  # the layout's last shard holds 7 - 6 rows
        cache.write_shard(2, _shard(3))
    with pytest.raises(ValueError, match="not per-sample tensors"):
        cache.write_shard(0, _shard(3, scale=torch.tensor(1.0)))
    assert not cache.shard_path(0).exists() and not cache.shard_path(2).exists()


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _alter(path):
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's bytes: same size, still a readable safetensors file
    path.write_bytes(bytes(data))
    _touch_later(path)


def _foreign(path):
    """Shard 1 of another set, with its own record, copied over shard 1 of this one."""
    other = _cache(path.parent.parent / "other", key={"eps": 0.3})
    _fill(other)
    shutil.copy(other.shard_path(1), path)
    shutil.copy(other.record_path(1), path.with_suffix(".json"))


def _unrecorded(path):
    path.with_suffix(".json").unlink()


@pytest.mark.parametrize(("damage", "reason"), [
    (_truncate, "truncated or rewritten"), (_alter, "altered"), (_foreign, "its record is that of shard 1 of set"),
    (_unrecorded, "it has no record"),
])
def test_a_bad_shard_is_named_and_counts_as_missing(tmp_path, caplog, damage, reason):
    cache = _cache(tmp_path)
    _fill(cache)
    assert cache.complete
    damage(cache.shard_path(1))
    fresh = AdversarialCache(cache.directory, cache.key, rows=7, shard_size=3)  # a later reader
    with caplog.at_level(logging.WARNING, logger="advdf.store.cache"):
        assert not fresh.complete  # though summary.json exists
    assert (fresh.directory / "summary.json").is_file()
    assert fresh.missing_shards() == [1] and reason in fresh.problems()[1]
    assert any("shard_00001.safetensors is bad" in r.message and reason in r.message for r in caplog.records)
    with pytest.raises(DataError, match=f"shard_00001.safetensors is bad: .*{reason}"):
        fresh.read_shard(1)
    assert fresh.read_shard(0)["x_adv"].shape == (3, 3, 4, 4)  # the others still read


def test_a_verified_shard_is_hashed_once_per_process(tmp_path, monkeypatch):
    cache = _cache(tmp_path)
    _fill(cache)  # the writer knows each digest: no re-read
    calls = []
    real = io_utils.hashlib.sha256
    monkeypatch.setattr(io_utils.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert cache.complete and cache.complete and len(list(cache.shards())) == 3
    assert calls == []
    _touch_later(cache.shard_path(0))  # same bytes, new mtime: hashed again, once, and still fine
    assert cache.complete and cache.complete and calls == [1]


def test_the_first_writers_layout_is_kept_by_later_writers_and_readers(tmp_path, caplog):
    first = _cache(tmp_path, rows=7, shard_size=3, batch_size=2)
    written = _fill(first)
    with caplog.at_level(logging.INFO, logger="advdf.store.cache"):
        later = AdversarialCache.for_run(tmp_path, "pgd", {"eps": 0.1}, rows=7, shard_size=64, batch_size=32)
        assert later.directory == first.directory and later.num_shards == 3 and later.complete
        assert later.open().shard_size == 3 and later.layout.batch_size == 2
    assert any("keeps its recorded layout: shard_size=3 batch_size=2" in r.message for r in caplog.records)
    assert torch.equal(later.read_shard(2)["x_adv"], written[2]["x_adv"])
    assert json.loads((first.directory / "layout.json").read_text()) == {
        "rows": 7, "shard_size": 3, "batch_size": 2, "shards": 3}


def test_a_directory_holding_another_key_is_refused(tmp_path):
    cache = _cache(tmp_path)
    (cache.directory / "key.json").write_text(json.dumps({"eps": 0.5}))
    with pytest.raises(DataError, match="holds another key.json"):
        AdversarialCache(cache.directory, {"eps": 0.1}, rows=7, shard_size=3).open()


def _holder(cache: AdversarialCache, i: int, held: threading.Event, finish_it: bool) -> None:
    """Another worker: holds shard ``i``'s lock a while, then writes the shard (or dies without writing it)."""
    with cache.shard_lock(i):
        held.set()
        time.sleep(0.5)
        if finish_it:
            cache.write_shard(i, _shard(cache.layout.shard_rows(i), seed=100 + i))


@pytest.mark.parametrize("finish_it", [True, False])
def test_a_locked_shard_is_left_for_later_then_verified_or_computed(tmp_path, finish_it):
    cache = _cache(tmp_path)
    held = threading.Event()
    other = threading.Thread(target=_holder, args=(cache, 1, held, finish_it))
    other.start()
    held.wait(5)
    order = []

    def compute(i):
        order.append(i)
        return _shard(cache.layout.shard_rows(i), seed=i)

    done = fill_shards(cache, compute)
    other.join()
    assert done == ([0, 2] if finish_it else [0, 2, 1]) and order == done  # 1 waited for, not computed twice
    summary = finish(cache, lambda c: {"n": sum(len(s["label"]) for s in c.shards(("label",)))})
    assert summary == {"n": 7} and cache.complete
    assert torch.equal(cache.read_shard(1)["x_adv"], _shard(3, seed=101 if finish_it else 1)["x_adv"])


def test_finish_refuses_a_set_with_a_missing_shard(tmp_path):
    cache = _cache(tmp_path)
    cache.write_shard(0, _shard(3))
    with pytest.raises(DataError, match=r"still lacks shards \[1, 2\]"):
        finish(cache, lambda c: {})
    assert not (cache.directory / "summary.json").exists()
