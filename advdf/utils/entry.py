"""What the thin Hydra entry points share: repository root, logging, one-line errors."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advdf.errors import AdvdfError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


def set_repo_root() -> None:
    """Let ``paths.root_dir`` resolve to the repository, whatever the working directory or cluster node."""
    os.environ.setdefault("ADVDF_ROOT", str(REPO_ROOT))


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`AdvdfError` (bad input, not bugs) into one ``error:`` line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
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
    """The :class:`AdvdfError` behind ``err`` (itself, or the cause Hydra's ``instantiate`` wrapped), else None."""
    while err is not None:
        if isinstance(err, AdvdfError):
            return err
        err = err.__cause__
    return None
