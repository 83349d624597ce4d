"""``autodl ui --optuna``: optuna-dashboard over the study storage, on loopback.

optuna-dashboard is an optional extra (``pip install 'autodl[dashboard]'``); it serves the
storage object autodl opens (the default journal file or an RDB URL) directly."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from typing import Any

from autodl.errors import UsageError
from autodl.webui._mlflow_ui import LOOPBACK

__all__ = ["DEFAULT_PORT", "dashboard_url", "run_optuna_dashboard"]

DEFAULT_PORT = 8080
INSTALL_HINT = "pip install 'autodl[dashboard]'"


def _dashboard_app(storage: Any) -> Any:
    try:
        from optuna_dashboard import wsgi
    except ImportError as exc:
        raise UsageError(f"--optuna needs optuna-dashboard, which is not installed ({exc}); "
                         f"install it with: {INSTALL_HINT}", key="optuna") from None
    return wsgi(storage)


def _serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM. The signal asks the server to stop after the
    request in hand: raised as KeyboardInterrupt inside a request, wsgiref's handler would
    answer 500 and swallow it, and the server would run on."""
    from wsgiref.simple_server import WSGIServer, make_server

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = make_server(host, port, app, server_class=Server)

    def stop(signum: int, frame: object) -> None:  # shutdown() waits for serve_forever
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()


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
    from autodl.report import load_study

    _check_host(host, expose)
    if study is not None:
        load_study(study, storage_url)  # a UsageError naming the study and the storage
    storage = _open_existing(storage_url)
    app = _dashboard_app(storage)
    port = port or DEFAULT_PORT
    if host not in LOOPBACK:
        print(f"warning: serving the Optuna storage on {host}: anyone who can reach this "
              "address can read and change its studies", file=sys.stderr)
    print(f"optuna-dashboard: {dashboard_url(storage, host, port, study)}  (Ctrl-C to stop)",
          flush=True)
    _serve(app, host, port)
    return 0


def _open_existing(url: str | None) -> Any:
    from autodl.backends import DEFAULT_STORAGE, open_storage
    from autodl.report import storage_exists

    url = url or DEFAULT_STORAGE
    if not storage_exists(url):
        raise UsageError(f"no Optuna storage at {url}; run `autodl search` here first or "
                         "pass --storage", key="storage")
    return open_storage(url)
