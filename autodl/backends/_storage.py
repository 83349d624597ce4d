"""Optuna storage from a URL or the default local journal file (safe for many processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodl.errors import UsageError

__all__ = ["DEFAULT_STORAGE", "open_storage"]

DEFAULT_STORAGE = "autodl.journal"


def open_storage(url: str | None) -> Any:
    """``None`` or a file path -> JournalStorage over a file (Optuna's JournalFileBackend);
    ``sqlite:///``, ``postgresql://``, ``mysql://`` -> RDBStorage."""
    import optuna

    url = url or DEFAULT_STORAGE
    if "://" in url:
        scheme = url.split("://", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "mysql"):
            raise UsageError(
                f"--storage: unsupported URL scheme {scheme!r}; use a journal file path, "
                "sqlite:///FILE, postgresql://... or mysql://...", key="storage",
            )
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(scheme))
    from optuna.storages.journal import JournalFileBackend

    path = Path(url)
    if path.is_dir():
        raise UsageError(f"--storage: {url} is a directory; expected a journal file path",
                         key="storage")
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _engine_kwargs(scheme: str) -> dict[str, Any]:
    if scheme == "sqlite":
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}
