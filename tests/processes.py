"""What a command started, read from /proc: every process and port must be gone once the
command has stopped (a server's own workers included)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


def _stats() -> dict[int, tuple[str, int]]:
    """pid -> (state, ppid) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            out[int(entry.name)] = (fields[0], int(fields[1]))
    return out


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    children: dict[int, list[int]] = {}
    for child, (_state, parent) in _stats().items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie has ended: it only waits to be reaped)."""
    stats = _stats()
    return {p for p in pids if p in stats and stats[p][0] != "Z"}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
