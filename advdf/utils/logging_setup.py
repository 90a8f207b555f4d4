"""Weights & Biases: offline unless an API key is configured, one run per job, always closed."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC", Path.home() / ".netrc")).hosts
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def default_wandb_mode() -> str:
    """``WANDB_MODE`` when set; else online with credentials, offline without (sync later with ``wandb sync``)."""
    return os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")


def finish_wandb() -> None:
    """Close the active W&B run so the next multirun job starts its own."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
