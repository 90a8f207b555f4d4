"""What the thin Hydra entry points share: repository root, config resolvers, logging, one-line errors."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from advdf.errors import AdvdfError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"

# The OmegaConf resolvers advdf's configs use, by the function that implements each. They are imported on first use:
# this module sits below the packages that implement them (see [tool.importlinter] in pyproject.toml).
RESOLVERS = {
    "advdf.prepared_dir": "advdf.jobs.runs:resolve_prepared_dir",  # data.prepared_dir named by the data identity
    "advdf.detector": "advdf.jobs.runs:resolve_detector",  # the only (or chosen) detector run under a prefix
    "advdf.denoiser": "advdf.jobs.runs:resolve_denoiser",  # the only denoiser run of a name for a detector
}


def _lazy(target: str) -> Callable[..., Any]:
    module, name = target.split(":")

    def resolve(*args, _parent_=None, _node_=None, _root_=None):
        return getattr(importlib.import_module(module), name)(*args, _parent_=_parent_, _node_=_node_, _root_=_root_)

    return resolve


def register_resolvers() -> None:
    """Register :data:`RESOLVERS` with OmegaConf (idempotent). The entry points, the jobs they run and
    ``compose_config`` call it before a config is resolved."""
    for name, target in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, _lazy(target))


def set_repo_root() -> None:
    """Let ``paths.root_dir`` resolve to the repository, whatever the working directory or cluster node; register
    the config resolvers."""
    os.environ.setdefault("ADVDF_ROOT", str(REPO_ROOT))
    register_resolvers()


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`AdvdfError` (bad input, not bugs) into one ``error:`` line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        register_resolvers()  # also where the job runs in another process (a SLURM node)
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user = user_error(err)
            if user is None:
                raise
            logging.getLogger("advdf").error("%s", user)
            print(f"error: {user}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def user_error(err: BaseException) -> AdvdfError | None:
    """The :class:`AdvdfError` behind ``err`` (itself, the cause Hydra's ``instantiate`` wrapped, or the error a
    config resolver raised, which OmegaConf wraps as the context of its own), else None."""
    while err is not None:
        if isinstance(err, AdvdfError):
            return err
        err = err.__cause__ or (err.__context__ if isinstance(err, InterpolationResolutionError) else None)
    return None
