"""New SQLite MLflow stores: created whole or not at all, and quickly.

MLflow creates a SQLite store by running every schema migration (about 4 s of CPU here, in
every new directory a search runs in). The first store is migrated once into a template in
the user's cache (per MLflow version) with its "Default" experiment removed; later stores are
copies of it, and MLflow adds the Default experiment itself (with this store's artifact
location) when it opens one, as it does for a store it has just migrated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

__all__ = ["check_sqlite_store", "ensure_sqlite_store"]


def check_sqlite_store(uri: str) -> None:
    """An existing SQLite store that is no readable database (truncated, overwritten) is a
    ``StorageError`` (exit 2) before the search starts, not a tracking failure after it."""
    from autodl._faults import check_writable, sqlite_path, storage_error
    from autodl.errors import StorageError

    path = sqlite_path(uri)
    if path is None or path == ":memory:":
        return
    check_writable(Path(path), "the MLflow store", "--tracking-uri")
    if not Path(path).is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro",
                                                uri=True)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        error = storage_error(exc, path, "the MLflow store", "--tracking-uri", opening=True)
        raise error or StorageError(f"cannot be read ({exc}); restore it from a backup or "
                                    "point --tracking-uri at a new file", file=path,
                                    exit_code=2) from exc


def ensure_sqlite_store(uri: str) -> None:
    """Create a new SQLite store under a temporary name, then rename it into place: a
    process killed mid-creation (or two processes creating the same store) can never leave
    a half-migrated ``mlflow.db`` behind."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if path.exists() or str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        template = _template()
        if template is not None:
            shutil.copyfile(template, tmp)
        _open(tmp)  # migrates every table (from a template: adds the Default experiment)
        if not path.exists():
            os.replace(tmp, path)
    finally:  # another process won the race (its store is complete), or this one failed
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _open(path: Path) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)


def _template() -> Path | None:
    """The migrated, experiment-free store for this MLflow version (made on first use);
    None where the cache cannot be written (the store is then migrated in place)."""
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autodl"
    template = cache / f"mlflow-{mlflow.__version__}-store.db"
    if template.is_file():
        return template
    tmp = cache / f".{template.name}.init-{os.getpid()}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        _open(tmp)
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        os.replace(tmp, template)
    except (OSError, sqlite3.Error):
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None
    return template
