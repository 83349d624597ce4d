"""A throw-away PostgreSQL server for tests: Debian's binaries, a data directory in a temp
dir, listening on 127.0.0.1 only, run as the ``postgres`` user (it refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["postgres_server"]


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def available() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty database ``autodl`` on 127.0.0.1."""
    root = tempfile.mkdtemp(prefix="pg", dir="/tmp")
    os.chmod(root, 0o777)
    data, port = os.path.join(root, "data"), _free_port()
    subprocess.run(_as_postgres([_bin("initdb"), "-D", data, "-U", "autodl", "-A", "trust",
                                 "--no-sync"]), check=True, capture_output=True)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", data, "-o", opts, "-l",
                                 os.path.join(root, "log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        _create_db(port)
        yield f"postgresql+psycopg2://autodl@127.0.0.1:{port}/autodl"
    finally:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _create_db(port: int) -> None:
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="autodl",
                                    dbname="postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.autocommit = True
    conn.cursor().execute("CREATE DATABASE autodl")
    conn.close()
