"""Run advdf's Hydra entry points as a user would: processes of their own with an isolated artifacts directory.

They are forked from one fork server (:mod:`tests.helpers.forkserver`), which has imported torch, Lightning and
advdf once, instead of each paying those imports again; ``fresh=True`` (multi-process launchers) or
``ADVDF_TESTS_FRESH_PYTHON=1`` starts a fresh interpreter instead.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
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


class _ForkServer:
    """The session's fork server, started on first use; requests are served one at a time."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.forkserver"], cwd=REPO, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ})
        ready = proc.stdout.readline()
        if not ready or not json.loads(ready).get("ready"):
            raise RuntimeError(f"the tests' fork server did not start (exit status {proc.poll()})")
        return proc

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory(prefix="advdf-run-") as tmp:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            request = {"script": argv[1], "argv": argv[2:], "env": env, "cwd": str(REPO), "stdout": str(out),
                       "stderr": str(err), "timeout": timeout}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
            if not reply:
                raise RuntimeError(f"the tests' fork server died (exit status {self.proc.poll()})")
            answer = json.loads(reply)
            code = answer["returncode"]
            stdout, stderr = (p.read_text(errors="replace") if p.exists() else "" for p in (out, err))
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)
        return subprocess.CompletedProcess(argv, code, stdout, stderr)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


_SERVER = _ForkServer()
atexit.register(_SERVER.close)


def run_script(script: str, overrides: list[str], artifacts: Path, timeout: float = 300,
               env: dict[str, str] | None = None, check: bool = True,
               fresh: bool = False) -> subprocess.CompletedProcess:
    """``python <script>.py <overrides>``; raises with the output tail when ``check`` and it fails.

    ``fresh``: a new interpreter rather than a child of the fork server (a job that starts copies of itself from
    ``sys.argv``, such as Lightning's DDP launcher).
    """
    argv = [sys.executable, str(REPO / f"{script}.py"), *overrides]
    env = env or script_env(artifacts)
    if fresh or os.environ.get("ADVDF_TESTS_FRESH_PYTHON") == "1":
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    else:
        proc = _SERVER.run(argv, env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script}.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
