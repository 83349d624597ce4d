"""A server command run in a process group of its own, which ends with its parent.

``mlflow server`` starts uvicorn and a job runner of its own. Stopping only the process
autodl started (``Popen.kill`` when Ctrl-C or SIGTERM reached autodl) left those listening
on the port. The command runs in a new session (its own process group, out of reach of the
terminal's Ctrl-C, which autodl forwards), and on any way out the whole group is asked to
stop (SIGTERM), then killed (SIGKILL) after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["group_members", "run_group", "stop_group"]


def run_group(cmd: list[str], grace: float = 10.0) -> int:
    """Run ``cmd`` until it exits; its exit code. Ctrl-C or SIGTERM here (a
    ``KeyboardInterrupt``) or any error ends every process of its group first, then
    propagates."""
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        return proc.wait()
    finally:
        stop_group(proc, grace)  # also the leader's children when it exited on its own


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the group led by ``proc``, SIGKILL to what is left after ``grace`` s."""
    pgid = proc.pid
    if proc.poll() is not None and not group_members(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not group_members(pgid):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group: from ``/proc`` where there is one, else
    whether the group can be signalled at all (zombies count there)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members
