"""``autodl ui --optuna``: optuna-dashboard over the study storage, on loopback.

optuna-dashboard is an optional extra (``pip install 'autodl[dashboard]'``); it serves the
storage object autodl opens (the default journal file or an RDB URL) directly."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from autodl.errors import UsageError
from autodl.tracking._ui import LOOPBACK

__all__ = ["DEFAULT_PORT", "dashboard_url", "run_optuna_dashboard"]

DEFAULT_PORT = 8080
INSTALL_HINT = "pip install 'autodl[dashboard]'"


def _run_server() -> Any:
    try:
        from optuna_dashboard import run_server
    except ImportError as exc:
        raise UsageError(f"--optuna needs optuna-dashboard, which is not installed ({exc}); "
                         f"install it with: {INSTALL_HINT}", key="optuna") from None
    return run_server


def _check_host(host: str, expose: bool) -> None:
    if host not in LOOPBACK and not expose:
        raise UsageError(f"--host {host}: the dashboard would be reachable from other machines "
                         "and could change the studies; pass --expose to do it on purpose",
                         key="host")


def dashboard_url(storage: Any, host: str, port: int, study: str | None) -> str:
    """The dashboard's address, on the study's page when the study exists."""
    base = f"http://{'[::1]' if host == '::1' else host}:{port}/dashboard"
    if study is None:
        return base
    try:
        return f"{base}/studies/{storage.get_study_id_from_name(study)}"
    except KeyError:
        raise UsageError(f"no study {study!r} in this storage", key="study") from None


def run_optuna_dashboard(storage_url: str | None, host: str, port: int | None,
                         study: str | None = None, expose: bool = False) -> int:
    """Serve until Ctrl-C. The storage must exist: an empty one has nothing to show."""
    from autodl.report._data import load_study

    _check_host(host, expose)
    run_server = _run_server()
    if study is not None:
        load_study(study, storage_url)  # a UsageError naming the study and the storage
    storage = _open_existing(storage_url)
    port = port or DEFAULT_PORT
    if host not in LOOPBACK:
        print(f"warning: serving the Optuna storage on {host}: anyone who can reach this "
              "address can read and change its studies", file=sys.stderr)
    print(f"optuna-dashboard: {dashboard_url(storage, host, port, study)}  (Ctrl-C to stop)",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
        run_server(storage, host=host, port=port)
    return 0


def _open_existing(url: str | None) -> Any:
    from autodl.backends._storage import DEFAULT_STORAGE, open_storage
    from autodl.report._data import storage_exists

    url = url or DEFAULT_STORAGE
    if not storage_exists(url):
        raise UsageError(f"no Optuna storage at {url}; run `autodl search` here first or "
                         "pass --storage", key="storage")
    return open_storage(url)
