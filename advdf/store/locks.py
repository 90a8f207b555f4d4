"""Filling a sharded set from several processes at once (a sweep's jobs sharing caches).

The protocol, per process:

1. every missing shard is tried in order: a process that takes the shard's lock (``shard_00003.lock``, without
   waiting) re-checks it (another process may have finished it meanwhile), computes it if still missing, writes
   shard and record, and releases the lock; a shard whose lock is held is left for later;
2. then, for each shard left for later, it waits for the lock, re-checks the shard and computes it only if the
   holder did not finish it (the holder died: the operating system releases a dead process's lock);
3. the caller writes the summary under the set's lock once every shard verifies (:func:`finish`).

So two identical jobs started together split the shards between them, neither computes a shard twice, and both
end with the same complete set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from filelock import Timeout
from tqdm.auto import tqdm

from advdf.errors import DataError
from advdf.store.cache import ShardedSet

log = logging.getLogger(__name__)

WAIT_LOG_S = 60.0  # how often a process waiting for another's shard says so


def _compute_if_missing(cache: ShardedSet, i: int, compute: Callable[[int], dict[str, torch.Tensor]]) -> bool:
    """With shard ``i``'s lock held: compute and write it unless it verifies now. Returns whether it was written."""
    if cache.status(i) is None:
        return False
    cache.write_shard(i, compute(i))
    return True


def fill_shards(cache: ShardedSet, compute: Callable[[int], dict[str, torch.Tensor]], todo: list[int] | None = None,
                desc: str = "shards") -> list[int]:
    """Compute every missing shard of ``cache`` (``todo``: those known to be missing), each under its own lock.

    Args:
        cache: an opened set.
        compute: the tensors of shard ``i`` (called with its lock held).
        todo: the shards to fill; default: :meth:`ShardedSet.missing_shards`.
        desc: the progress bar's label.

    Returns:
        The shards this process computed (the others were finished by another process).
    """
    todo = cache.missing_shards() if todo is None else todo
    done, later = [], []
    for i in tqdm(todo, desc=desc, unit="shard"):
        lock = cache.shard_lock(i)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("shard %d of %s is being computed by another process: left for later", i, cache.directory.name)
            later.append(i)
            continue
        try:
            if _compute_if_missing(cache, i, compute):
                done.append(i)
        finally:
            lock.release()
    for i in later:
        lock = cache.shard_lock(i)
        while True:
            try:
                lock.acquire(timeout=WAIT_LOG_S)
                break
            except Timeout:
                log.info("still waiting for shard %d of %s (locked by another process)", i, cache.directory.name)
        try:
            if _compute_if_missing(cache, i, compute):
                log.info("shard %d of %s was not finished by the process that held it: computed here", i,
                         cache.directory.name)
                done.append(i)
        finally:
            lock.release()
    return done


def finish(cache: ShardedSet, summarize: Callable[[ShardedSet], dict]) -> dict:
    """Write the set's summary under its lock, once every shard verifies; returns it."""
    with cache.set_lock():
        bad = cache.missing_shards()
        if bad:
            raise DataError(f"cache {cache.directory} still lacks shards {bad} after filling it; rerun")
        summary = summarize(cache)
        cache.write_summary(summary)
    return summary
