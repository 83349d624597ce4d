"""Shared helpers of the benchmark suite (``benchmarks/run.py``): launching ``autodl search``
in a fresh directory, reading its Optuna journal and MLflow store, and result rows.

Every search runs as its own process (``python -m autodl search ...``) in a new temporary
directory, so each one starts cold with the default local journal and MLflow store.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPACES = HERE / "spaces"
STUDY = "bench"


@dataclass
class Row:
    """One line of the suite's table: ``a`` against ``b`` (labels in ``measure``)."""

    measure: str
    a: float | None
    b: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Search:
    """One finished ``autodl search`` process."""

    cwd: Path
    launched: float  # time.time() just before the process started
    wall_s: float
    returncode: int
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        path = self.cwd / "out" / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def describe(name: str, workload: str, seeds: Sequence[int] | str, meaning: str) -> dict:
    """Print what a comparison runs and what its ratio means; returned for the JSON."""
    print(f"\n== {name} ==\n  workload: {workload}\n  seeds:    {seeds}\n  ratio:    {meaning}",
          flush=True)
    return {"workload": workload, "seeds": list(seeds) if not isinstance(seeds, str) else seeds,
            "meaning": meaning}


def med(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


@contextmanager
def workdir(tag: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"autodl-suite-{tag}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def search_cmd(space: str, *flags: str) -> list[str]:
    """``autodl search`` with the suite's fixed study name and output folder."""
    return [sys.executable, "-m", "autodl", "search", space, "--study", STUDY, "--out", "out",
            "--quiet", *flags]


def run_search(cwd: Path, cmd: list[str], timeout: float = 1800.0) -> Search:
    launched, t0 = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(f"  ! exit {proc.returncode}: {' '.join(cmd[2:])}\n{proc.stderr[-2000:]}",
              flush=True)
    return Search(cwd, launched, wall, proc.returncode, proc.stderr)


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t0


def trials(cwd: Path, study: str = STUDY) -> list[Any]:
    """The study's trials from the journal ``autodl.journal`` in ``cwd`` (a copy cut at the
    last complete record, so a search still writing it is read safely)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    data = (cwd / "autodl.journal").read_bytes()
    copy = cwd / "read.journal"
    copy.write_bytes(data[: data.rfind(b"\n") + 1])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(copy)))
    return optuna.load_study(study_name=study, storage=storage).trials


def duration_sum(found: Sequence[Any]) -> float:
    """Seconds the trials spent in their workers (``duration_s``: build, train, validate,
    per-epoch pruning round trips, checkpoint)."""
    return sum(float(t.user_attrs.get("duration_s", 0.0)) for t in found)


def phase_s(found: Sequence[Any]) -> float:
    """Seconds from the first trial's start to the last one's end (the trial phase)."""
    ended = [t for t in found if t.datetime_start and t.datetime_complete]
    return (max(t.datetime_complete for t in ended)
            - min(t.datetime_start for t in ended)).total_seconds()


def epoch_time_sum(cwd: Path) -> float:
    """Seconds inside epoch loops (train + validate), from MLflow's ``epoch_time_s``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([exp.experiment_id], "tags.`autodl.role` = 'trial'",
                              max_results=10_000)
    return sum(m.value for r in runs
               for m in client.get_metric_history(r.info.run_id, "epoch_time_s"))


def as_dict(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
