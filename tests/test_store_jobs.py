"""The store under the attack and evaluate jobs: bad shards recomputed bit for bit, layouts shared, keys, clear
errors before any work, non-finite logits refused, and two real processes sharing one set."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file

from advdf.defenses import NoDefense
from advdf.errors import CheckpointError, ConfigError
from advdf.jobs.attack import cache_for, run_attack, selected_positions
from advdf.jobs.common import build_datamodule
from advdf.jobs.evaluate import evaluate_sets
from advdf.jobs.plan import compose_config
from advdf.models import load_detector_weights
from advdf.models.checkpoint import save_detector
from tests.helpers.scripts import REPO, TINY, run_script, script_env

# PGD draws a random start per batch: a recomputed shard only matches if it is seeded by its index.
PGD = [*TINY, "attack=pgd", "attack.steps=3", "limit=12", "shard_size=4", "batch_size=2", "device=cpu"]


CHECKPOINT: list[str] = []  # the override naming the fixture's detector weights (set by ``tiny``)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(artifacts dir, data module): the tiny synthetic tree and an untrained tiny detector's weights, at a path
    named explicitly (``checkpoint=...``) as a user would name any weights."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    CHECKPOINT[:] = [f"checkpoint={artifacts / 'detector' / 'detector.safetensors'}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVDF_ARTIFACTS", str(artifacts))
        cfg = compose_config("attack", [*PGD, *CHECKPOINT])
        datamodule = build_datamodule(cfg)
        torch.manual_seed(0)
        save_detector(instantiate(cfg.model), cfg.checkpoint)
        yield artifacts, datamodule


def _cfg(*overrides: str, name: str = "attack"):
    return compose_config(name, [*PGD, *CHECKPOINT, *overrides])


def _cache(cfg, datamodule):
    dataset = datamodule.dataset(cfg.split)
    return cache_for(cfg, cfg.attack, dataset, selected_positions(dataset, cfg.limit))


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} if directory.is_dir() else {}


def test_shards_hold_the_objectives_extras(tiny):
    _, dm = tiny
    cfg = _cfg()
    summary = run_attack(cfg, datamodule=dm)
    shard = _cache(cfg, dm).read_shard(0)
    assert shard["logits"].shape == shard["clean_logits"].shape == (4, 2)
    assert torch.equal(shard["logits"].argmax(1), shard["adv_pred"])
    assert torch.equal(shard["clean_logits"].argmax(1), shard["clean_pred"])
    assert summary["n"] == 12 and summary["shards_run"] == 3


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _alter(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


@pytest.mark.parametrize("damage", [_truncate, _alter])
def test_a_bad_shard_is_named_and_recomputed_bit_for_bit(tiny, caplog, damage):
    _, dm = tiny
    cfg = _cfg("seed=3" if damage is _truncate else "seed=4")
    first = run_attack(cfg, datamodule=dm)
    cache = _cache(cfg, dm)
    # copies: load_file maps the file, and the damage below rewrites it in place
    original = [{k: v.clone() for k, v in load_file(str(cache.shard_path(i))).items()} for i in range(3)]
    damage(cache.shard_path(1))
    before = _files(cache.directory)
    with caplog.at_level(logging.WARNING):
        assert not _cache(cfg, dm).complete  # summary.json is there, shard 1 is not what was written
        # another shard_size and batch_size: the resumer keeps the recorded layout (and so the per-shard seeds)
        again = run_attack(_cfg(f"seed={cfg.seed}", "shard_size=8", "batch_size=6"), datamodule=dm)
    assert any("shard_00001.safetensors is bad" in r.message for r in caplog.records)
    assert again["shards_run"] == 1
    after = _files(cache.directory)
    assert after["shard_00000.safetensors"] == before["shard_00000.safetensors"]
    assert after["shard_00002.safetensors"] == before["shard_00002.safetensors"]
    for i in range(3):
        now = load_file(str(cache.shard_path(i)))
        assert all(torch.equal(now[k], original[i][k]) for k in original[i] if k != "time_s"), i
    same = [json.dumps({k: v for k, v in s.items() if k not in ("time_s", "shards_run")}, sort_keys=True)
            for s in (first, again)]  # as text: an undefined ASR is NaN in both
    assert same[0] == same[1]


def test_evaluate_finds_a_set_written_with_another_shard_size(tiny, caplog):
    _, dm = tiny
    cfg = _cfg("seed=5")
    summary = run_attack(cfg, datamodule=dm)
    evaluation = compose_config("evaluate", [*TINY, *CHECKPOINT, "limit=12", "device=cpu", "seed=5"])  # shard_size 64
    OmegaConf.update(evaluation, "attacks", {"pgd": cfg.attack, "fgsm": evaluation.attacks.fgsm}, merge=False)
    dataset = dm.dataset(cfg.split)
    detector = load_detector_weights(instantiate(cfg.model), cfg.checkpoint).eval()
    positions = selected_positions(dataset, 12)
    with caplog.at_level(logging.INFO):
        rows = evaluate_sets(evaluation, detector, {"na": NoDefense()}, dataset, positions, torch.device("cpu"))
    pgd = next(r for r in rows if r["attack"] == "pgd")
    assert pgd["n"] == 12 and pgd["f2f"] == pytest.approx(summary["acc_adv"])
    assert next(r for r in rows if r["attack"] == "fgsm")["n"] == 0  # never generated: "—"
    assert any("keeps its recorded layout: shard_size=4" in r.message for r in caplog.records)

    _truncate(_cache(cfg, dm).shard_path(2))  # a bad shard: the set is incomplete and the shard named
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        rows = evaluate_sets(evaluation, detector, {"na": NoDefense()}, dataset, positions, torch.device("cpu"))
    assert next(r for r in rows if r["attack"] == "pgd")["n"] == 0
    assert any("no complete cached set for attack 'pgd'" in r.message and "bad shards shard_00002.safetensors"
               in r.message for r in caplog.records)


def test_the_key_ignores_layout_and_speed_options_but_not_what_changes_numbers(tiny):
    _, dm = tiny
    base = _cache(_cfg(), dm).directory
    for same in ("shard_size=8", "batch_size=6", "attack.compile=true", "attack.channels_last=true"):
        assert _cache(_cfg(same), dm).directory == base, same
    for other in ("attack.precision=bf16", "attack.eps=0.1", "+attack.batch_size=1", "seed=1", "limit=11"):
        assert _cache(_cfg(other), dm).directory != base, other
    key = json.loads((base / "key.json").read_text())
    assert "shard_size" not in key and "attack_code" not in key and key["attack_version"] == 1
    assert {"compile", "channels_last"}.isdisjoint(key["attack"]) and key["attack"]["precision"] == "fp32"


@pytest.mark.parametrize(("override", "message"), [
    ("shard_size=0", "shard_size must be a positive integer (samples per cache shard), got 0"),
    ("limit=0", "limit must be null (the whole split) or a positive integer, got 0"),
    ("limit=-3", "limit must be null (the whole split) or a positive integer, got -3"),
    ("batch_size=0", "batch_size must be a positive integer (samples per attack call), got 0"),
    ("+attack.batch_size=0", "attack.batch_size must be null (one call per batch) or a positive integer, got 0"),
])
def test_bad_sizes_are_one_config_error_before_any_work(tiny, override, message):
    artifacts, dm = tiny
    run_attack(_cfg(), datamodule=dm)
    cache_root = artifacts / "adv_cache"
    before = {p: p.stat().st_mtime_ns for p in cache_root.rglob("*")}
    with pytest.raises(ConfigError) as err:
        run_attack(_cfg(override), datamodule=dm)
    assert str(err.value) == message
    assert {p: p.stat().st_mtime_ns for p in cache_root.rglob("*")} == before


def test_non_finite_logits_are_refused_before_the_shard_is_written(tiny):
    _, dm = tiny
    cfg = _cfg("seed=6")
    torch.manual_seed(0)
    broken = instantiate(cfg.model).eval()
    last = [m for m in broken.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.fill_(float("nan"))
    with pytest.raises(CheckpointError, match=re.escape(f"model tiny_cnn (weights {cfg.checkpoint}) gives "
                                                        "non-finite clean logits (NaN or inf) on 2 of 2 samples")):
        run_attack(cfg, datamodule=dm, detector=broken)
    assert not list(_cache(cfg, dm).directory.glob("shard_*.safetensors"))


# --- two real processes on one set ---------------------------------------------------------------------------
# Enough steps that attacking, not starting Python, is most of a run: computing every shard twice would show.
SHARED = [*TINY, "attack=pgd", "attack.steps=1500", "limit=16", "shard_size=2", "batch_size=2", "device=cpu"]


def _attack_process(artifacts: Path, *overrides: str) -> subprocess.Popen:
    env = script_env(artifacts, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return subprocess.Popen([sys.executable, str(REPO / "attack.py"), *SHARED, *CHECKPOINT, *overrides], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> tuple[str, int]:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    match = re.search(r"'shards_run': (\d+)", out)
    assert match, out[-3000:]
    return out, int(match.group(1))


@pytest.mark.slow
def test_two_processes_share_one_set_and_compute_each_shard_once(tiny):
    artifacts, dm = tiny
    t0 = time.perf_counter()
    _, solo_ran = _finish(_attack_process(artifacts, "seed=11"))  # one run alone, on a set of the same cost
    solo = time.perf_counter() - t0
    assert solo_ran == 8

    t0 = time.perf_counter()
    procs = [_attack_process(artifacts, "seed=12") for _ in range(2)]
    (out_a, ran_a), (out_b, ran_b) = (_finish(p) for p in procs)
    both = time.perf_counter() - t0
    assert ran_a + ran_b == 8, (ran_a, ran_b)  # every shard computed exactly once, between the two
    assert ran_a > 0 and ran_b > 0
    summaries = [re.search(r"summary: (\{.*\})", out).group(1) for out in (out_a, out_b)]
    assert [re.sub(r"'time_s': [^,]+, |'shards_run': \d+", "", s) for s in summaries].count(
        re.sub(r"'time_s': [^,]+, |'shards_run': \d+", "", summaries[0])) == 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVDF_ARTIFACTS", str(artifacts))
        cache = _cache(compose_config("attack", [*SHARED, *CHECKPOINT, "seed=12"]), dm)
        assert cache.complete
        pids = {json.loads(cache.record_path(i).read_text())["writer"]["pid"] for i in range(8)}
    assert pids == {p.pid for p in procs}
    print(f"one run alone {solo:.1f} s; two runs sharing the set {both:.1f} s")
    assert both < 1.6 * solo, (both, solo)


@pytest.mark.slow
def test_attack_py_prints_a_bad_limit_as_one_line_before_any_work(tmp_path):
    # A fresh artifacts dir: no data, no detector; the limit is checked before either is looked for.
    proc = run_script("attack", [*TINY, "limit=-3"], tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: limit must be null (the whole split) or a positive integer, got -3"], proc.stderr[-2000:]
    assert not (tmp_path / "data").exists() and not (tmp_path / "adv_cache").exists()
