"""Run advdf's Hydra entry points as a user would: subprocesses with an isolated artifacts directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A whole pipeline in seconds: a tiny synthetic tree, 32 px crops, a two-layer CNN.
TINY_DATA = [
    "data.synthetic.num_videos=8", "data.synthetic.num_frames=6", "data.crop_size=32",
    "data.frames_per_video_real=6", "data.frames_per_video_fake=2", "data.batch_size=16",
]
TINY = ["model=tiny_cnn", *TINY_DATA, "logger=none"]


def script_env(artifacts: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "ADVDF_ARTIFACTS": str(artifacts), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0",
           "PYTHONUNBUFFERED": "1"}
    return {**env, **(extra or {})}


def run_script(script: str, overrides: list[str], artifacts: Path, timeout: float = 300,
               env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python <script>.py <overrides>``; raises with the output tail when ``check`` and it fails."""
    proc = subprocess.run(
        [sys.executable, str(REPO / f"{script}.py"), *overrides], cwd=REPO, env=env or script_env(artifacts),
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{script}.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
