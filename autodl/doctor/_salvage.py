"""Rebuild a journal from its intact records so that Optuna replays it as it did before.

Optuna numbers studies and trials by counting create operations, so a lost create would
shift every later study and trial onto its neighbour's records. Each lost create is
therefore replaced by a placeholder at its place: a lost trial comes back RUNNING (no
owner, so ``--resume`` re-queues it unless its later records finished it), tagged
``autodl.salvaged``; a lost study comes back under its name when the text still shows it.
Which lines held a create is read from what is left of their text; a line with nothing
left is taken for a trial create when a later record names a trial no create accounts for.
Every other unreadable or unreplayable record is dropped; Optuna's replay then ignores the
records that depended on it (an update of a trial that is finished or was never created).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.backends import SALVAGED, next_study_id, replayed_studies, replayed_trials
from autodl.doctor._records import (
    CREATE_STUDY,
    CREATE_TRIAL,
    SET_STUDY_USER_ATTR,
    Line,
    Lost,
    apply,
    op_name,
    replayer,
)

__all__ = ["SALVAGED", "Rebuilt", "file_time", "rebuild"]
_WORKER = "autodl-doctor"
_RUNNING, _MINIMIZE, _MAXIMIZE = 0, 1, 2


@dataclass
class Rebuilt:
    records: list[dict[str, Any]]
    notes: list[str]  # one per line dropped, saying what it held and what stands for it
    replay: Any  # Optuna's replay of ``records``: the studies and trials they hold
    needs: int | None = None  # internal: a line to take for a lost trial create


@dataclass
class _State:
    lines: list[Line]
    assumed: set[int]
    replay: Any = field(default_factory=replayer)
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)  # lines with no operation made out
    last_time: str = ""
    last_study: int | None = None


def rebuild(lines: list[Line], fallback_time: str) -> Rebuilt:
    """The records to write; lines whose operation nothing shows are first taken for none,
    then, while a later record names a trial no create accounts for, the latest of them
    before it is taken for a trial create and the rebuild starts over."""
    assumed: set[int] = set()
    while True:
        result = _rebuild(lines, assumed, fallback_time)
        if result.needs is None:
            return result
        assumed.add(result.needs)


def _rebuild(lines: list[Line], assumed: set[int], fallback_time: str) -> Rebuilt:
    st = _State(lines, assumed, last_time=fallback_time)
    for index, line in enumerate(lines):
        if line.record is not None:
            trial = line.record.get("trial_id")
            if (isinstance(trial, int) and trial >= len(replayed_trials(st.replay))
                    and line.record.get("op_code") != CREATE_TRIAL and st.unknown):
                return Rebuilt([], [], None, needs=st.unknown[-1])
            reason = apply(st.replay, line.record)
            if reason is None:
                _keep(st, line.record)
                continue
            lost, error = [_as_lost(line.record)], reason
        else:
            lost, error = line.lost, line.error or "unreadable"
        if not lost:
            st.notes.append(f"line {line.number}: {error}; dropped")
        for item in lost:
            _stand_in(st, index, line, item, error)
    return Rebuilt(st.records, st.notes, st.replay)


def _keep(st: _State, record: dict[str, Any]) -> None:
    st.records.append(record)
    for key in ("datetime_complete", "datetime_start"):
        if isinstance(record.get(key), str):
            st.last_time = record[key]
    if (record.get("op_code") == CREATE_TRIAL
            and record.get("study_id") in replayed_studies(st.replay)):
        st.last_study = record["study_id"]


def _as_lost(record: dict[str, Any]) -> Lost:
    study = record.get("study_id")
    return Lost(op_code=record.get("op_code"), study_id=study if isinstance(study, int) else None,
                study_name=record.get("study_name") if isinstance(record.get("study_name"), str)
                else None, directions=None, datetime=None)


def _stand_in(st: _State, index: int, line: Line, item: Lost, error: str) -> None:
    """Drop the operation ``item`` of ``line``; a create gets a placeholder in its place."""
    op = item.op_code
    if op is None and line.number in st.assumed:
        op = CREATE_TRIAL
    what = op_name(op) + ("" if op is not None or line.number in st.assumed
                          else " (nothing left to tell which)")
    if op == CREATE_TRIAL and replayed_studies(st.replay):
        made = _placeholder_trial(st, line, item)
        note = f"a lost trial create: trial {made} re-created as a RUNNING placeholder"
    elif op == CREATE_STUDY:
        note = f"a lost study create: study {_placeholder_study(st, index, line, item)!r} " \
               "re-created"
    else:
        note = f"dropped {what}"
        if op is None:
            st.unknown.append(line.number)
    st.notes.append(f"line {line.number}: {error}; {note}")


def _placeholder_trial(st: _State, line: Line, item: Lost) -> str:
    study = item.study_id if item.study_id in replayed_studies(st.replay) else st.last_study
    if study not in replayed_studies(st.replay):
        study = next(iter(replayed_studies(st.replay)))
    record = {"op_code": CREATE_TRIAL, "worker_id": _WORKER, "study_id": study,
              "datetime_start": item.datetime or st.last_time, "state": _RUNNING,
              "value": None, "values": None,
              "user_attrs": {SALVAGED: f"journal line {line.number} was unreadable; re-created "
                                       "from the records after it"}}
    error = apply(st.replay, record)
    if error:
        raise RuntimeError(f"a placeholder trial {error}")  # a bug here, not in the journal
    st.records.append(record)
    trial_id = len(replayed_trials(st.replay)) - 1
    name = replayed_studies(st.replay)[study].study_name
    return f"{replayed_trials(st.replay)[trial_id].number} of study {name!r}"


def _placeholder_study(st: _State, index: int, line: Line, item: Lost) -> str:
    names = {s.study_name for s in replayed_studies(st.replay).values()}
    name = item.study_name if item.study_name and item.study_name not in names \
        else f"salvaged-line-{line.number}"
    study_id = next_study_id(st.replay)
    directions = item.directions or _later_directions(st.lines[index + 1:], study_id)
    record = {"op_code": CREATE_STUDY, "worker_id": _WORKER, "study_name": name,
              "directions": directions}
    error = apply(st.replay, record)
    if error:
        raise RuntimeError(f"a placeholder study {error}")
    st.records.append(record)
    return name


def _later_directions(lines: list[Line], study_id: int) -> list[int]:
    """A lost study's directions from autodl's ``autodl.objectives`` attribute, recorded
    just after the study; minimize when nothing says."""
    for line in lines:
        record = line.record or {}
        attr = record.get("user_attr")
        if (record.get("op_code") == SET_STUDY_USER_ATTR and record.get("study_id") == study_id
                and isinstance(attr, dict) and isinstance(attr.get("autodl.objectives"), list)):
            return [_MAXIMIZE if o[-1] == "maximize" else _MINIMIZE
                    for o in attr["autodl.objectives"]]
    return [_MINIMIZE]


def file_time(path: Path) -> str:
    """The journal's last change, for placeholders with no time of their own."""
    stamp = path.stat().st_mtime
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat()
