"""Shared fixtures: every test runs in its own working directory (the default study
storage, MLflow store and runs/ are files in the working directory)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY_SPACE = """
name: tiny
description: two small families, for tests
defaults: {data: iris, trials: 4, epochs: 3, holdout: true}  # cv: tests that say so
families:
  mlp:
    depth: {low: 1, high: 2}
    width: {low: 8, high: 32, log: true}
    dropout: {low: 0.0, high: 0.2}
  transformer:
    depth: 1
    width: 8
    heads: 2
optimizer:
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  options:
    adamw: {}
    sgd: {momentum: {low: 0.5, high: 0.9}}
schedule:
  options: [constant, cosine]
training:
  batch_size: [16, 32]
"""


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def start_search(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts ``autodl search`` in the background in ``tmp_path`` (its own process group).
    A search still running when the test ends (a wait failed) is killed with its workers:
    left running, it would load the machine under the tests that follow."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **kwargs: object) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "autodl", "search", *args], cwd=tmp_path,
                                start_new_session=True, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:  # the group: a search killed alone leaves workers and tracking
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


class SmallDisk:
    """A real file system of a few hundred KiB (tmpfs) that really fills up: ``path`` is
    its mount point; ``resize`` grows it, as freeing space would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            reason = "needs root" if os.geteuid() != 0 else done.stderr.strip()
            pytest.skip(f"cannot mount a tmpfs to fill ({reason}); CI runs as root")

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], SmallDisk]]:
    """``small_disk("600k")`` mounts a tmpfs of that size under ``tmp_path/disk``; it is
    unmounted when the test ends."""
    disks: list[SmallDisk] = []

    def mount(size: str, name: str = "disk") -> SmallDisk:
        disk = SmallDisk(tmp_path / name)
        disk.mount(size)
        disks.append(disk)
        return disk

    yield mount
    for disk in disks:
        disk.unmount()
