"""``autodl doctor``: check a journal file and salvage the intact records of a corrupt one.

A journal with a record corrupted in the middle (bytes overwritten) cannot be opened by
Optuna at all: every study in it is lost to every command. :func:`doctor_journal` finds
the bad lines, rebuilds the journal from every record that reads (placeholders keep the
numbering of studies and trials, see :mod:`autodl.doctor._salvage`), keeps the original as
a backup and puts the rebuilt journal in its place, so ``--resume`` continues the studies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.doctor._records import find_corrupt_line, last_line_reads, read_lines
from autodl.doctor._salvage import SALVAGED, file_time, rebuild
from autodl.errors import UsageError

__all__ = ["SALVAGED", "DoctorReport", "corrupt_journal_error", "doctor_journal",
           "find_corrupt_line", "last_line_reads"]


@dataclass
class DoctorReport:
    path: Path
    lines: int = 0
    backup: Path | None = None  # set when the journal was rewritten
    notes: list[str] = field(default_factory=list)  # what was dropped or re-created
    studies: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> state counts

    def lines_out(self) -> list[str]:
        out = [f"{self.path}: {self.lines} lines, "
               + ("healthy" if self.backup is None else
                  f"{len(self.notes)} bad line(s); salvaged, original kept at {self.backup}")]
        out += [f"  {note}" for note in self.notes]
        for name, counts in self.studies.items():
            states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
            out.append(f"  study {name!r}: {states or 'no trials'}")
        if self.backup is not None and any("RUNNING" in c for c in self.studies.values()):
            out.append("  RUNNING trials are re-queued by `autodl search --resume --study NAME`")
        return out


def corrupt_journal_error(path: Path) -> UsageError | None:
    """The exit-2 error naming the journal's first corrupt line and what to do; None when
    every line reads (the trouble is elsewhere)."""
    found = find_corrupt_line(path)
    if found is None:
        return None
    line, reason = found
    return UsageError(f"journal record {line} is corrupt ({reason}); no study in this journal "
                      f"can be opened until it is repaired. Run `autodl doctor {path}` to "
                      "salvage every intact record into a new journal (the original is kept "
                      "as a backup), then continue with `autodl search ... --resume`",
                      file=str(path), line=line)


def doctor_journal(path: Path) -> DoctorReport:
    """Check ``path``; when a record is corrupt, salvage every intact one in its place and
    keep the original as ``<name>.corrupt-<time>.bak``. Exit-2 errors for what is no
    journal file."""
    from autodl.backends import repair_torn_journal

    if not path.is_file():
        raise UsageError("no journal file here" + (" (it is a directory)" if path.is_dir()
                                                   else ""), file=str(path))
    repair_torn_journal(path)
    report = DoctorReport(path)
    if find_corrupt_line(path) is None:
        lines = list(read_lines(path))
        report.lines = len(lines)
        _count(report, rebuild(lines, file_time(path)).replay)
        return report
    with _journal_lock(path):
        lines = list(read_lines(path))
        rebuilt = rebuild(lines, file_time(path))
        _refuse_live_owners(path, rebuilt.replay)
        report.lines, report.notes = len(lines), rebuilt.notes
        report.backup = _replace(path, rebuilt.records)
    _count(report, rebuilt.replay)
    return report


def _refuse_live_owners(path: Path, replay: Any) -> None:
    """A process of this host still running trials reads the journal by byte offset: the
    rewrite would pull the file from under it."""
    import socket

    from autodl.backends import OWNER, frozen_study_id, owner_is_dead

    for study in replay.get_all_studies():
        for trial in replay.get_all_trials(frozen_study_id(study), None):
            owner = trial.user_attrs.get(OWNER)
            if (trial.state.name == "RUNNING" and owner
                    and owner.rpartition(":")[0] == socket.gethostname()
                    and not owner_is_dead(owner)):
                raise UsageError(f"process {owner} is still running trial {trial.number} of "
                                 f"study {study.study_name!r}; stop it before the journal is "
                                 "rewritten (then run autodl doctor again)", file=str(path))


def _count(report: DoctorReport, replay: Any) -> None:
    from autodl.backends import frozen_study_id

    for study in replay.get_all_studies():
        counts: dict[str, int] = {}
        for trial in replay.get_all_trials(frozen_study_id(study), None):
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        report.studies[study.study_name] = counts


@contextlib.contextmanager
def _journal_lock(path: Path) -> Iterator[None]:
    """Optuna's own lock on the journal: no process appends while it is rewritten."""
    from autodl.backends import journal_lock

    with journal_lock(str(path)):
        yield


def _replace(path: Path, records: list[dict[str, object]]) -> Path:
    """Writes ``records`` next to ``path``, keeps the original as a backup, then renames
    the new journal into place (a crash leaves the original or the new one, never half)."""
    backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    tmp = path.with_name(path.name + ".salvage")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return backup
