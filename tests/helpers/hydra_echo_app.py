"""Tiny Hydra app used to test advdf's SLURM launcher configs.

Each run writes ``result.json`` into its Hydra output directory, recording
the swept ``value`` and the SLURM/submitit environment it ran in, so a test
can tell that a sweep really went through SLURM jobs.

Run it as a script (its primary config lives in the ConfigStore, so it needs
no config directory of its own)::

    python tests/helpers/hydra_echo_app.py --multirun \
        hydra.searchpath=[file:///path/to/advdf/conf] \
        hydra/launcher=slurm_cpu hydra.launcher.partition=debug value=1,2
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig

RESULT_FILE = "result.json"

# Environment variables that identify where the job ran.
_RECORDED_ENV = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_CPUS_PER_TASK",
    "SUBMITIT_EXECUTOR",
)


@dataclass
class EchoConfig:
    """Primary config of the echo app.

    Attributes:
        value: Arbitrary value to sweep over; echoed into the result.
    """

    value: int = 0


ConfigStore.instance().store(name="echo", node=EchoConfig)


@hydra.main(version_base="1.3", config_path=None, config_name="echo")
def main(cfg: EchoConfig) -> dict[str, Any]:
    """Writes ``result.json`` into the job's output dir and returns its content.

    Args:
        cfg: The composed config.

    Returns:
        The recorded result (also pickled back to the sweeping process by
        submitit).
    """
    result: dict[str, Any] = {
        "value": cfg.value,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "env": {key: os.environ.get(key) for key in _RECORDED_ENV},
    }
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
