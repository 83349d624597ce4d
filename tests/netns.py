"""Network namespaces for tests (and benchmarks) that start Ray.

Ray binds the machine's interface address by default. Inside a namespace that the test
creates there is only loopback (and, for a cluster, a veth pair between two namespaces the
test also created), so no test traffic can leave those namespaces. Needs root and
iproute2's ``ip``; ``skip_reason()`` says why not when they are missing.

Teardown ends only the processes that run inside the test's own namespaces (listed by
``ip netns pids``, signalled by pid; ``ray stop`` would stop every Ray on the host).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Namespace", "create_namespace", "delete_namespace", "link_namespaces",
           "skip_reason"]


def skip_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Namespace:
    name: str
    links: list[str] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                             text=True)
        return [int(p) for p in out.stdout.split() if p.isdigit()]


def create_namespace(prefix: str = "autodl") -> Namespace:
    """A new namespace with only loopback, up (Ray then uses 127.0.0.1)."""
    ns = Namespace(f"{prefix}-{secrets.token_hex(4)}")
    _ip("netns", "add", ns.name)
    try:
        _ip("-n", ns.name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError:
        _ip("netns", "del", ns.name)
        raise
    return ns


def link_namespaces(a: Namespace, b: Namespace, addr_a: str, addr_b: str,
                    prefix_len: int = 24) -> None:
    """A veth pair between ``a`` and ``b`` with the given addresses (no route beyond)."""
    tag = secrets.token_hex(3)
    va, vb = f"va{tag}", f"vb{tag}"
    _ip("link", "add", va, "type", "veth", "peer", "name", vb)
    for ns, dev, addr in ((a, va, addr_a), (b, vb, addr_b)):
        _ip("link", "set", dev, "netns", ns.name)
        _ip("-n", ns.name, "addr", "add", f"{addr}/{prefix_len}", "dev", dev)
        _ip("-n", ns.name, "link", "set", dev, "up")
        ns.links.append(dev)


def delete_namespace(ns: Namespace, grace_s: float = 3.0) -> None:
    """Stop what runs inside ``ns`` (TERM, then KILL after ``grace_s``), then delete it;
    its veth ends go with it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ns.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while ns.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not ns.pids():
            break
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
