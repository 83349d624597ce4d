"""Shape checks on user data files, made before they are loaded (exit 2, the shape named).

A table's header and line count, a Parquet file's metadata and an ``.npz`` member's
``.npy`` header say how large the data is without reading it: a 10^6-column CSV took pandas
a minute and 3 GB, and an ``.npz`` whose header declares a huge array made NumPy try to
allocate it. Nothing here allocates more than a read buffer.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from autodl.data._split import MIN_SAMPLES
from autodl.errors import UsageError

__all__ = ["MAX_COLUMNS", "check_npz", "check_table", "memory_bytes"]

MAX_COLUMNS = 100_000  # pandas keeps per-column state: wider data belongs in an .npz
_CHUNK = 1 << 24
_MAX_HEADER_LINE = 64 << 20


def memory_bytes() -> int:
    """This machine's physical memory (a declared array larger than it cannot load)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_table(path: Path, training: bool = True) -> None:
    """A CSV or Parquet file's rows and columns within bounds: at most :data:`MAX_COLUMNS`
    columns, at least ``MIN_SAMPLES`` rows when ``training``, and its values (as float64)
    within this machine's memory."""
    if path.suffix.lower() == ".csv":
        rows, columns = _csv_shape(path)
    else:
        rows, columns = _parquet_shape(path)
    shape = f"{rows} row{'s' * (rows != 1)} x {columns} column{'s' * (columns != 1)}"
    if columns > MAX_COLUMNS:
        raise UsageError(f"the table has {shape}, more than {MAX_COLUMNS} columns; save wide "
                         "data as an .npz file (arrays X and y) instead", file=str(path))
    if training and rows < MIN_SAMPLES:
        raise UsageError(f"the table has {shape}; expected at least {MIN_SAMPLES} rows of "
                         "samples", file=str(path))
    if rows * columns * 8 > memory_bytes():
        raise UsageError(f"the table has {shape} ({_size(rows * columns * 8)} as numbers), "
                         f"more than this machine's memory ({_size(memory_bytes())})",
                         file=str(path))


def _csv_shape(path: Path) -> tuple[int, int]:
    """(data rows at most, columns): the header line parsed alone, lines counted by
    streaming (a quoted newline counts as a line: an upper bound)."""
    try:
        with path.open("rb") as f:
            header = _first_line(f, path)
            lines, last = 0, b"\n"
            while chunk := f.read(_CHUNK):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            lines += last != b"\n"
    except OSError as exc:
        raise UsageError(f"cannot read the table: {exc.strerror or exc}", file=str(path)) from None
    text = header.decode("utf-8", errors="replace")
    columns = len(next(csv.reader([text]), [])) if text.strip() else 0
    return lines, columns


def _first_line(f: io.BufferedReader, path: Path) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = f.readline(_CHUNK)
        parts.append(chunk)
        size += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return b"".join(parts)
        if size > _MAX_HEADER_LINE:
            raise UsageError(f"the header line is over {_size(_MAX_HEADER_LINE)} (more than "
                             f"{MAX_COLUMNS} columns); save wide data as an .npz file",
                             file=str(path))


def _parquet_shape(path: Path) -> tuple[int, int]:
    try:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
    except ImportError:
        return 0, 0  # pandas says what is missing when it reads the file
    except Exception as exc:
        raise UsageError(f"cannot read the table ({type(exc).__name__}: {exc})",
                         file=str(path)) from None
    return meta.num_rows, meta.num_columns


def check_npz(path: Path) -> None:
    """Every array's header in an ``.npz`` agrees with the bytes stored for it, and the
    arrays together fit in this machine's memory."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    total += _npy_bytes(archive, info, path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UsageError(f"not a readable .npz file ({type(exc).__name__}: {exc})",
                         file=str(path)) from None
    if total > memory_bytes():
        raise UsageError(f"the arrays hold {_size(total)}, more than this machine's memory "
                         f"({_size(memory_bytes())})", file=str(path))


def _npy_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> int:
    """The bytes the member's header declares, checked against what the member holds."""
    name = info.filename[:-4]
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(member)
        except ValueError as exc:
            raise UsageError(f"array {name!r}: unreadable .npy header ({exc})",
                             file=str(path)) from None
        offset = member.tell()
    if dtype.hasobject:
        return 0  # refused by np.load(allow_pickle=False), with its own message
    declared = math.prod(shape) * dtype.itemsize
    stored = info.file_size - offset
    if declared != stored:
        raise UsageError(f"array {name!r} declares shape {tuple(shape)} {dtype} "
                         f"({_size(declared)}) but holds {_size(stored)}: the file is corrupt "
                         "or cut short", file=str(path))
    return declared
