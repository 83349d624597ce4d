"""Faults of the machine, in words: a full or read-only disk, a denied permission, an I/O
error, a corrupt store.

``fault_kind`` recognises one in an exception (an ``OSError``, or the SQLite, SQLAlchemy,
Optuna, MLflow or torch error that wraps one); ``storage_error`` turns it into a one-line
``StorageError`` naming the file, what is wrong and what to do. Any other exception is not
the machine's fault: ``None``. Nothing here imports torch, Optuna or MLflow.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autodl.errors import StorageError

__all__ = ["CORRUPT", "FULL", "advice", "check_writable", "describe", "disk_is_full",
           "fault_kind", "filename", "machine_fault", "sqlite_path", "storage_error",
           "writing"]

FULL, READ_ONLY, DENIED, IO, CORRUPT, UNOPENABLE = (
    "full", "read-only", "denied", "io", "corrupt", "unopenable")

_ERRNO = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EFBIG: FULL, errno.EROFS: READ_ONLY,
          errno.EACCES: DENIED, errno.EPERM: DENIED, errno.EIO: IO}
_TEXT = (("database or disk is full", FULL), ("no space left", FULL), ("disk quota", FULL),
         ("readonly database", READ_ONLY), ("read-only file system", READ_ONLY),
         ("disk i/o error", IO), ("database disk image is malformed", CORRUPT),
         ("file is not a database", CORRUPT), ("unable to open database file", UNOPENABLE))
_WHAT = {FULL: "no space left on the device", READ_ONLY: "the file system is read-only",
         DENIED: "permission denied", IO: "an I/O error (a failing disk?)",
         CORRUPT: "the file is corrupt", UNOPENABLE: "the file cannot be opened"}
_TODO = {FULL: "free space on its disk", READ_ONLY: "make it writable or point {flag} elsewhere",
         DENIED: "fix its permissions or point {flag} elsewhere",
         IO: "check the disk or point {flag} elsewhere",
         CORRUPT: "restore it from a backup or point {flag} at a new file",
         UNOPENABLE: "check that its directory exists and is writable, or point {flag} "
                     "elsewhere"}
_CODE = {FULL: errno.ENOSPC, READ_ONLY: errno.EROFS, DENIED: errno.EACCES, IO: errno.EIO,
         CORRUPT: errno.EIO, UNOPENABLE: errno.ENOENT}
# torch.save's writers report a failed write without an errno
_TORCH_WRITE = ("inline_container.cc", "PytorchStreamWriter", "iostream error")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def fault_kind(exc: BaseException) -> str | None:
    """``full``, ``read-only``, ``denied``, ``io``, ``corrupt`` or ``unopenable`` when
    ``exc`` (or what it wraps) is the machine's fault; else None."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _ERRNO:
            return _ERRNO[e.errno]
        text = str(e).lower()
        for needle, kind in _TEXT:
            if needle in text:
                return kind
    return None


def filename(exc: BaseException) -> str | None:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
    return None


def describe(exc: BaseException) -> str:
    """One line: the file when the error names one, what is wrong."""
    kind = fault_kind(exc)
    what = _WHAT[kind] if kind else _first_line(exc)
    file = filename(exc)
    return f"{file}: {what}" if file else what


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def advice(exc: BaseException) -> str | None:
    """One line for a fault of the machine no command turned into a ``StorageError``: the
    file, what is wrong, what to do; None for any other error."""
    kind = fault_kind(exc)
    if kind is None:
        return None
    return f"{describe(exc)}; {_TODO[kind].format(flag='it')}, then run the command again"


def machine_fault(exc: BaseException) -> dict[str, Any] | None:
    """A trial's failure fields when the machine failed it (``reason`` ``environment``,
    ``detail``, ``fault`` {kind, file}), else None: a trial of a broken disk is re-run."""
    kind = fault_kind(exc)
    if kind is None or kind == CORRUPT:
        return None
    return {"reason": "environment", "detail": describe(exc),
            "fault": {"kind": kind, "file": filename(exc)}}


def storage_error(exc: BaseException | None, file: str, store: str, flag: str,
                  study: str | None = None, opening: bool = False,
                  kind: str | None = None) -> StorageError | None:
    """The one-line error for a fault in ``store`` (``file``, set by ``flag``): exit 2 when
    it could not be opened, else 1; with ``study``, the ``--resume`` that continues it.
    ``kind`` stands for ``exc`` when that was raised in another process. None when ``exc``
    is not the machine's fault."""
    if exc is not None:
        kind = fault_kind(exc)
        file = filename(exc) or file
    if kind is None:
        return None
    todo = _TODO[kind].format(flag=flag)
    after = (f"then rerun with --resume --study {study} (finished trials are saved)" if study
             else "then run the command again")
    return StorageError(f"{_WHAT[kind]} ({store}); {todo}, {after}", file=file,
                        exit_code=2 if opening else 1)


def sqlite_path(uri: str) -> str | None:
    """The file of a ``sqlite:///`` URI; None for other URIs."""
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///"):] or None


def check_writable(path: Path, store: str, flag: str) -> None:
    """``path`` (or, before it exists, its nearest existing folder) can be written: a
    read-only disk or a denied folder is a ``StorageError`` with exit 2 before anything
    runs, not a failure half-way."""
    probe = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
    if os.access(probe, os.W_OK):
        return
    code = errno.EROFS if _read_only(probe) else errno.EACCES
    error = storage_error(OSError(code, os.strerror(code), str(path)), str(path), store,
                          flag, opening=True)
    assert error is not None
    raise error


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def disk_is_full(path: Path | str, margin: int = 256 * 1024) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has less
    than ``margin`` bytes free for this user."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Around a write of ``path`` (a temporary file): a failed write removes it, and a
    fault of the machine that names no file (torch's and numpy's write errors; any error
    while the disk is full) becomes the ``OSError`` it is, naming ``path``."""
    try:
        yield
    except BaseException as exc:
        full = disk_is_full(path)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        if not isinstance(exc, Exception):
            raise
        kind = fault_kind(exc)
        torch_write = isinstance(exc, RuntimeError) and any(t in str(exc) for t in _TORCH_WRITE)
        if kind is None and (full or torch_write):
            kind = FULL if full else IO
        if kind is None or filename(exc) is not None:
            raise
        code = _CODE[kind]  # the fault, naming the file it could not write
        raise OSError(code, os.strerror(code), str(path)) from exc
