"""The package type-checks: ``mypy`` with pyproject.toml's ``[tool.mypy]`` (``--strict`` on
``autodl``; the tests themselves are not checked). Issue 19: py.typed ships, so the types
it promises must hold.

Marked slow: it runs in CI's main run, on the newest versions pyproject.toml accepts, and
not in the floor run, whose older libraries (optuna, mlflow) carry other annotations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_types_package_is_mypy_strict_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"mypy found type errors:\n{done.stdout}{done.stderr}"
