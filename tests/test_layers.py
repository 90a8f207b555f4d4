"""The import-layer contract (pyproject's [tool.importlinter]) holds, and it would catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.is_file(), reason="import-linter (a dev extra) is not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml")], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_layers_point_downward():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(REPO / "advdf", tmp_path / "advdf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    models = tmp_path / "advdf" / "models" / "__init__.py"
    models.write_text(models.read_text() + "\nimport advdf.jobs.train  # noqa: E402, F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "advdf.models" in proc.stdout and "advdf.jobs" in proc.stdout and "BROKEN" in proc.stdout
