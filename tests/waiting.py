"""Waiting on a search that runs in another process: poll until something it writes shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120.0,
               interval: float = 0.5) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout`` s.
    An exception counts as not yet: the search is writing the store meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    pytest.fail(f"not seen within {timeout:.0f} s: {what}")


def mlflow_client(db: Path) -> Any:
    """A client on the search's SQLite store, or None while it does not exist: the search
    creates it whole, and a client opened earlier would create (and race) it."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{db}") if db.exists() else None
