"""A journal file's lines as records: each one read, checked by replaying it the way Optuna
does, and, when it cannot be read, what can still be made out of it (which operation, on
which study) from the text left intact.

Optuna's journal is one JSON object a line, ``{"op_code": N, "worker_id": ..., ...}``, and
its replay numbers studies and trials by counting the create operations in file order: a
line lost in the middle shifts the number of every later study or trial unless something
takes its place (see :mod:`autodl.doctor._salvage`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CREATE_STUDY", "CREATE_TRIAL", "SET_STUDY_USER_ATTR", "Line", "Lost", "apply",
           "find_corrupt_line", "last_line_reads", "op_name", "read_lines", "replayer"]

CREATE_STUDY = 0
SET_STUDY_USER_ATTR = 2
CREATE_TRIAL = 4
_OP_NAMES = ("create_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
             "create_trial", "set_trial_param", "set_trial_state_values",
             "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
             "discard_trials")
_OP = re.compile(rb'"op_code":\s*(\d+)')
_STUDY_ID = re.compile(rb'"study_id":\s*(\d+)')
_STUDY_NAME = re.compile(rb'"study_name":\s*"((?:[^"\\]|\\.)*)"')
_DIRECTIONS = re.compile(rb'"directions":\s*\[([0-9,\s]+)\]')
_DATETIME = re.compile(rb'"datetime_(?:start|complete)":\s*"([0-9T:.+\-]+)"')


def op_name(op_code: int | None) -> str:
    if op_code is None or not 0 <= op_code < len(_OP_NAMES):
        return "unknown operation"
    return _OP_NAMES[op_code]


@dataclass
class Lost:
    """One operation of an unreadable line, as far as its text can still be read."""

    op_code: int | None = None
    study_id: int | None = None
    study_name: str | None = None
    directions: list[int] | None = None
    datetime: str | None = None


@dataclass
class Line:
    """A line of the journal: ``record`` when it reads, else ``error`` and what was made out
    of its text (``lost``: one entry per operation found in it, at least one)."""

    number: int  # 1-based
    record: dict[str, Any] | None = None
    error: str | None = None
    lost: list[Lost] = field(default_factory=list)


def read_lines(path: Path) -> Iterator[Line]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            yield _line(number, raw)


def _line(number: int, raw: bytes) -> Line:
    if raw.strip(b"\r\n") == b"":  # Optuna fails on it too; no record was there
        return Line(number, error="an empty line")
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Line(number, error=f"not JSON: {exc}", lost=_guess(raw))
    if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
        return Line(number, error="not a journal record (no op_code)", lost=_guess(raw))
    return Line(number, record=record)


def _guess(raw: bytes) -> list[Lost]:
    """The operations an unreadable line held, from the text left intact: a record's first
    field is its op_code, so each ``"op_code":N`` starts one (bytes overwritten across a
    newline make one line of two records)."""
    starts = [m.start() for m in _OP.finditer(raw)]
    if not starts:
        return [Lost(datetime=_text(_DATETIME, raw))]
    pieces = [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]
    out = []
    for piece in pieces:
        op = int(_OP.match(piece).group(1))  # type: ignore[union-attr]
        study = _text(_STUDY_ID, piece)
        directions = _text(_DIRECTIONS, piece)
        out.append(Lost(
            op_code=op if 0 <= op < len(_OP_NAMES) else None,
            study_id=int(study) if study is not None else None,
            study_name=_text(_STUDY_NAME, piece),
            directions=[int(d) for d in directions.split(",") if d.strip()]
            if directions else None,
            datetime=_text(_DATETIME, piece)))
    return out


def _text(pattern: re.Pattern[bytes], raw: bytes) -> str | None:
    match = pattern.search(raw)
    if match is None:
        return None
    try:
        return match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None


def replayer() -> Any:
    """Optuna's own replay (what ``JournalStorage`` runs on open), as a checker: a record
    it raises on cannot be read back by any process."""
    from autodl.backends import journal_replay

    return journal_replay("autodl-doctor-")


def apply(replay: Any, record: dict[str, Any]) -> str | None:
    """Replays ``record``; the reason when Optuna cannot."""
    try:
        replay.apply_logs([record])
    except Exception as exc:  # any error in a replay makes the journal unreadable
        return f"cannot be replayed ({type(exc).__name__}: {exc})"
    return None


def last_line_reads(path: Path) -> bool:
    """Whether the journal's last line is a JSON object (Optuna skips a bad last line
    without a word, then fails on it once anything is appended after it)."""
    with path.open("rb") as f:
        end = f.seek(0, 2)
        start = max(0, end - 65536)
        while True:
            f.seek(start)
            tail = f.read(end - start)
            tail = tail[:-1] if tail.endswith(b"\n") else tail
            if b"\n" in tail or start == 0:
                break
            start = max(0, start - (1 << 20))
    return _line(0, tail.rsplit(b"\n", 1)[-1]).record is not None


def find_corrupt_line(path: Path) -> tuple[int, str] | None:
    """The first line Optuna cannot read or replay, and why; None when every line can."""
    replay = replayer()
    for line in read_lines(path):
        if line.record is None:
            return line.number, line.error or "unreadable"
        reason = apply(replay, line.record)
        if reason:
            return line.number, reason
    return None
