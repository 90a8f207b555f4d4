"""A fork server for the tests' entry-point runs: one Python process imports torch, Lightning, Hydra and advdf's jobs
once, then forks a child per run, which executes ``<script>.py`` as ``__main__`` with the run's argv, environment
and working directory, its stdout and stderr going to files.

A child is a process of its own, as ``python attack.py ...`` is: Hydra, logging and every job start from nothing
in it, and its exit status is the script's. The only difference from a fresh interpreter is that the modules
imported here are already imported, which spares each run the seconds those imports take. Set
``ADVDF_TESTS_FRESH_PYTHON=1`` to run every script in a fresh interpreter instead.

Protocol: one JSON object per line on stdin, ``{"script", "argv", "env", "cwd", "stdout", "stderr", "timeout"}``;
one line back per request, ``{"returncode": int, "timed_out": bool}`` (a run past its timeout is killed).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
import traceback

# What every entry point imports (the slow part of its start). Nothing here may start a thread: a forked child
# only has the thread that forked it.
PRELOAD = ("torch", "pytorch_lightning", "hydra", "timm", "advdf.jobs.attack", "advdf.jobs.train",
           "advdf.jobs.evaluate")


def _child(req: dict) -> int:
    """Run the script as ``__main__``; returns its exit status."""
    os.setsid()  # a group of its own: a timeout kills the run and whatever it started
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.argv = [req["script"], *req["argv"]]
    sys.path[0] = os.path.dirname(req["script"])
    code = 0
    try:
        runpy.run_path(req["script"], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - what an uncaught exception does to a script: traceback, status 1
        traceback.print_exc()
        code = 1
    return code


def _run(req: dict) -> tuple[int, bool]:
    """(exit status, whether the run was killed at its timeout)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _child(req)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    deadline = time.monotonic() + float(req.get("timeout", 300))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return -9, True
        time.sleep(0.02)


def main() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        code, timed_out = _run(json.loads(line))
        print(json.dumps({"returncode": code, "timed_out": timed_out}), file=out, flush=True)


if __name__ == "__main__":
    main()
