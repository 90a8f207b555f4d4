"""Every bad input a user can type gets one ``error:`` line and exit status 2, and leaves earlier results alone.

Each case runs the entry point as a subprocess, as a user would, against an artifacts directory that already holds a
trained detector and a cached adversarial set; the files there must be byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from advdf.models import create_detector, save_detector
from tests.helpers.scripts import TINY, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    artifacts = tmp_path_factory.mktemp("artifacts")
    run_script("train", [*TINY, "trainer.max_epochs=1", "trainer.accelerator=cpu", "test=false"], artifacts)
    (ckpt,) = artifacts.glob("checkpoints/**/detector.safetensors")
    run_script("attack", [*TINY, f"checkpoint={ckpt}", "attack=fgsm", "shard_size=16", "limit=32"], artifacts)
    bad = tmp_path_factory.mktemp("bad")
    other = save_detector(create_detector("mesonet", input_size=32), bad / "mesonet.safetensors")
    state = load_file(str(ckpt))
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, str(bad / "nan.safetensors"))
    return {"artifacts": artifacts, "ckpt": ckpt, "other": other, "nan": bad / "nan.safetensors"}


def snapshot(artifacts: Path) -> dict[str, str]:
    """sha256 of every file a job could have computed (weights, checkpoints, caches, prepared data)."""
    return {str(p.relative_to(artifacts)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("checkpoints", "adv_cache", "data") for p in sorted((artifacts / sub).rglob("*"))
            if p.is_file() and ".lock" not in p.name}


CASES = {
    "unknown option of the attack": ("attack", ["+attack.foo=1"], r"attack\.foo is not an option of"),
    "unknown config key": ("attack", ["attack.fooo=1"], r"unknown config key 'attack\.fooo'"),
    "shard_size=0": ("attack", ["shard_size=0"], r"shard_size"),
    "limit=0": ("attack", ["limit=0"], r"limit"),
    "limit=-3": ("attack", ["limit=-3"], r"limit"),
    "device=foo": ("attack", ["device=foo"], r"device='foo'"),
    "checkpoint of another architecture": ("attack", ["checkpoint={other}"], r"does not fit .*missing keys .*unexpected keys"),
    "non-finite weights": ("attack", ["checkpoint={nan}"], r"non-finite weights"),
    "trainer.max_epochs=0": ("train", ["trainer.max_epochs=0"], r"max_epochs"),
    "data.batch_size=0": ("train", ["data.batch_size=0"], r"batch_size"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_error_line_and_keeps_results(world, case):
    script, overrides, message = CASES[case]
    overrides = [o.format(**world) for o in overrides]
    if script == "train":
        base = [*TINY, "trainer.accelerator=cpu"]
    else:  # the settings of the cached set, which a bad override then replaces
        base = [*TINY, f"checkpoint={world['ckpt']}", "attack=fgsm", "shard_size=16", "limit=32"]
    before = snapshot(world["artifacts"])
    proc = run_script(script, [*base, *overrides], world["artifacts"], check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.search(message, errors[0]), errors[0]
    assert snapshot(world["artifacts"]) == before
