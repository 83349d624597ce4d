"""Optuna storage from a URL or the default local journal file (safe for many processes)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from autodl._faults import sqlite_path, storage_error
from autodl.errors import StorageError, UsageError

__all__ = ["DEFAULT_STORAGE", "open_storage", "storage_fault", "study_names"]

DEFAULT_STORAGE = "autodl.journal"


def _rdb_storage(url: str, scheme: str, attempts: int = 10) -> Any:
    """RDBStorage, tolerating the race of several processes (a search and `autodl worker`s
    starting together) creating the schema of a new database: the loser retries and finds
    the tables the winner made."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(scheme))
        except ModuleNotFoundError as exc:
            raise UsageError(f"--storage {scheme}: the database driver is not installed "
                             f"({exc.name}); install it with: pip install 'autodl[{scheme}]'",
                             key="storage") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as exc:
            raced = "already exists" in str(exc) or "duplicate key" in str(exc)
            if attempt == attempts - 1 or not raced:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def storage_fault(exc: BaseException, url: str | None, study: str | None = None,
                  opening: bool = False) -> StorageError | None:
    """``exc`` as the one-line error of the study storage at ``url`` when it is a fault of
    the machine (a full disk, a corrupt database...), else None."""
    url = url or DEFAULT_STORAGE
    file = sqlite_path(url) or url
    return storage_error(exc, file, "the study storage", "--storage", study, opening)


def open_storage(url: str | None) -> Any:
    """``None`` or a file path -> JournalStorage over a file (Optuna's JournalFileBackend);
    ``sqlite:///``, ``postgresql://``, ``mysql://`` -> RDBStorage. A storage that cannot be
    opened (a read-only or full disk, a corrupt database) is a ``StorageError``, exit 2."""
    try:
        return _open_storage(url)
    except (UsageError, StorageError):
        raise
    except Exception as exc:
        error = storage_fault(exc, url, opening=True)
        if error is None:
            raise
        raise error from exc


def study_names(storage: Any, url: str | None) -> list[str]:
    """The studies in an opened storage (reading it whole: an unreadable one is exit 2)."""
    import optuna

    try:
        return optuna.get_all_study_names(storage)
    except Exception as exc:
        error = storage_fault(exc, url, opening=True)
        if error is None:
            raise
        raise error from exc


def _open_storage(url: str | None) -> Any:
    import optuna

    url = url or DEFAULT_STORAGE
    if "://" in url:
        scheme = url.split("://", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "mysql"):
            raise UsageError(
                f"--storage: unsupported URL scheme {scheme!r}; use a journal file path, "
                "sqlite:///FILE, postgresql://... or mysql://...", key="storage",
            )
        return _rdb_storage(url, scheme)
    from optuna.storages.journal import JournalFileBackend

    path = Path(url)
    if path.is_dir():
        raise UsageError(f"--storage: {url} is a directory; expected a journal file path",
                         key="storage")
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_journal(path)
    try:
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError) as exc:
        raise _corrupt(path) or exc from None  # JSONDecodeError is a ValueError
    if path.stat().st_size and not _last_line_reads(path):
        raise _corrupt(path) or UsageError("the journal's last record is corrupt", file=url)
    return storage


def _corrupt(path: Path) -> UsageError | None:
    from autodl.doctor import corrupt_journal_error

    return corrupt_journal_error(path)


def _last_line_reads(path: Path) -> bool:
    from autodl.doctor import last_line_reads

    return last_line_reads(path)


def repair_torn_journal(path: Path) -> Path | None:
    """A crash mid-write can leave a last record without its newline; appending after it
    would corrupt the next record too. Keep a backup, drop the partial record, and say so.
    Returns the backup's path when a repair was made."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return None
        f.seek(0)
        data = f.read()
    keep = data[: data.rfind(b"\n") + 1]
    backup = path.with_name(f"{path.name}.torn-{int(time.time())}.bak")
    shutil.copy2(path, backup)
    tmp = path.with_name(path.name + ".repair")
    tmp.write_bytes(keep)
    os.replace(tmp, path)
    logging.getLogger("autodl").warning(
        "%s: the last record was torn (%d bytes, a crash mid-write); dropped it, backup "
        "kept at %s", path, len(data) - len(keep), backup)
    return backup


def _engine_kwargs(scheme: str) -> dict[str, Any]:
    if scheme == "sqlite":
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}
