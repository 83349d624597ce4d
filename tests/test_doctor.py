"""autodl doctor: a journal corrupted in the middle is named on open and salvaged so that
its studies keep their trial numbers and resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from autodl.backends._storage import open_storage
from autodl.backends._study import SALVAGED, counted_trials
from autodl.cli import main
from autodl.doctor import doctor_journal
from autodl.errors import UsageError

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _overwrite(journal: Path, number: int, start: int, length: int) -> bytes:
    """Overwrites ``length`` bytes of line ``number`` (1-based) from ``start``, as a bad
    sector or a stray write would; returns the original line."""
    lines = journal.read_bytes().split(b"\n")
    original = lines[number - 1]
    line = bytearray(original)
    line[start:start + length] = b"\x00" * min(length, len(line) - start)
    lines[number - 1] = bytes(line)
    journal.write_bytes(b"\n".join(lines))
    return original


def _finishing_line(journal: Path, trial_id: int) -> int:
    """The line of the record that finished the trial (COMPLETE, PRUNED or FAIL)."""
    for number, text in enumerate(journal.read_text().splitlines(), start=1):
        record = json.loads(text)
        if record["op_code"] == 6 and record["trial_id"] == trial_id and record["state"]:
            return number
    raise AssertionError(f"trial {trial_id} never finished")


def test_doctor_salvages_a_corrupt_middle_line_and_resume_completes_the_budget(
        tiny_space: Path, capsys) -> None:
    """The record that finished trial 1 is corrupted: every command names the file and line
    (exit 2); doctor salvages the rest with a backup; --resume re-runs trial 1 and the
    study ends with exactly its budget, nothing RUNNING."""
    args = [str(tiny_space), "--study", "hurt", "--trials", "4", "--epochs", "1",
            "--no-tracking", "--no-export", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "autodl", "search", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    journal = Path("autodl.journal")
    number = _finishing_line(journal, 1)
    _overwrite(journal, number, 40, 30)
    corrupt = journal.read_bytes()

    assert main(["best", "hurt"]) == 2
    err = capsys.readouterr().err
    assert f"autodl.journal:{number}: journal record {number} is corrupt" in err
    assert "autodl doctor autodl.journal" in err and "Traceback" not in err

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"line {number}: not JSON" in out and "set_trial_state_values" in out
    backups = list(Path(".").glob("autodl.journal.corrupt-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == corrupt
    study = optuna.load_study(study_name="hurt", storage=open_storage("autodl.journal"))
    assert [t.state.name for t in study.trials][1] == "RUNNING"

    assert main(["search", *args, "--resume"]) == 0
    study = optuna.load_study(study_name="hurt", storage=open_storage("autodl.journal"))
    assert len(counted_trials(study)) == 4
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert main(["doctor"]) == 0 and "healthy" in capsys.readouterr().out


def _two_studies(path: Path) -> dict[str, list[tuple]]:
    """Two studies whose trials interleave in one journal; what each trial holds."""
    storage = open_storage(str(path))
    studies = [optuna.create_study(study_name=n, storage=storage, direction=d)
               for n, d in (("a", "minimize"), ("b", "maximize"))]
    for i, study in [(i, s) for i in range(4) for s in studies] + [(4, studies[1])] * 2:
        trial = study.ask()  # a0 b0 a1 b1 a2 b2 a3 b3 b4 b5
        x = trial.suggest_float("x", 0, 1)
        study.tell(trial, x + i)
    return _contents(path)


def _contents(path: Path) -> dict[str, list[tuple]]:
    storage = open_storage(str(path))
    return {s.study_name: [(t.number, t.state.name, t.values, t.params, t.user_attrs)
                           for t in optuna.load_study(study_name=s.study_name,
                                                      storage=storage).trials]
            for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.parametrize("create, trial, start, length", [
    (3, 1, 120, 20),  # b1 between a1 and a2: the study id is still legible
    (9, 5, 0, 400),  # b5, after b4: nothing legible; found by a later record naming it
])
def test_doctor_recreates_a_lost_trial_create_so_later_trials_keep_their_numbers(
        tmp_path: Path, create: int, trial: int, start: int, length: int) -> None:
    """Optuna numbers trials by counting creates: a lost create of one of study b's trials
    gets a placeholder, so every trial of both studies keeps its number and records (the
    placeholder gets them back from the records after its create)."""
    journal = tmp_path / "two.journal"
    before = _two_studies(journal)
    creates = [n for n, t in enumerate(journal.read_text().splitlines(), start=1)
               if json.loads(t)["op_code"] == 4]
    _overwrite(journal, creates[create], start, length)
    with pytest.raises(UsageError, match=rf"two\.journal:{creates[create]}: journal record"):
        open_storage(str(journal))

    report = doctor_journal(journal)
    assert report.backup is not None and len(report.notes) == 1
    assert f"a lost trial create: trial {trial} of study 'b'" in report.notes[0]
    after = _contents(journal)
    assert after["a"] == before["a"]
    assert after["b"][trial][4][SALVAGED]
    assert after["b"][trial][:4] == before["b"][trial][:4]
    assert [t for i, t in enumerate(after["b"]) if i != trial] == \
        [t for i, t in enumerate(before["b"]) if i != trial]


def test_doctor_refuses_to_rewrite_a_journal_a_live_process_runs_trials_of(
        tmp_path: Path) -> None:
    from autodl.backends._study import OWNER, owner_id

    journal = tmp_path / "live.journal"
    _two_studies(journal)
    study = optuna.load_study(study_name="a", storage=open_storage(str(journal)))
    study.ask().set_user_attr(OWNER, owner_id())  # this process: alive
    _overwrite(journal, 3, 5, 10)
    before = journal.read_bytes()
    with pytest.raises(UsageError, match=rf"process {owner_id()} is still running trial 4 of "
                                         r"study 'a'"):
        doctor_journal(journal)
    assert journal.read_bytes() == before
    assert not list(tmp_path.glob("*.bak"))


@pytest.mark.parametrize("damage", ["overwritten", "empty line"])
def test_open_storage_names_a_corrupt_last_line(tmp_path: Path, damage: str) -> None:
    """Optuna skips a bad last line silently, then fails once anything follows it."""
    journal = tmp_path / "last.journal"
    _two_studies(journal)
    count = len(journal.read_text().splitlines())
    if damage == "overwritten":
        _overwrite(journal, count, 5, 10)
    else:
        with journal.open("ab") as f:
            f.write(b"\n")
        count += 1
    with pytest.raises(UsageError, match=rf"last\.journal:{count}: journal record {count} is "
                                         r"corrupt \((not JSON|an empty line)"):
        open_storage(str(journal))
    assert doctor_journal(journal).backup is not None
    assert _contents(journal)["a"]  # opens again
