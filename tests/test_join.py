"""``autodl worker``: processes joining a study through a shared storage, as from other
machines, with a real PostgreSQL server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest

from autodl.backends._study import is_void
from autodl.cli import main
from tests import postgres

CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def postgres_url():
    why = postgres.available()
    if why and not CI:  # .ci/run installs PostgreSQL; a developer machine may lack it
        pytest.skip(why)
    with postgres.postgres_server() as url:
        yield url


def _autodl(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autodl", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_worker_two_processes_finish_a_postgres_study(tmp_path: Path, tiny_space: Path,
                                                      postgres_url: str) -> None:
    from mlflow import MlflowClient

    search = _autodl("search", str(tiny_space), "--storage", postgres_url, "--study", "pg",
                     "--trials", "12", "--epochs", "40", "--pruner", "none", "--workers", "1",
                     "--quiet", cwd=tmp_path)
    workers = [_autodl("worker", "pg", "--storage", postgres_url, "--wait", "120", "--quiet",
                       cwd=tmp_path) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=600) for p in (search, *workers)]
    finally:  # none left running (and loading the machine) when a wait fails
        for proc in (search, *workers):
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    for proc, (_out, err) in zip((search, *workers), outputs, strict=True):
        assert proc.returncode == 0, err
    ran = [int(re.search(r"ran (\d+) trials", out).group(1)) for out, _ in outputs[1:]]
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    # a trial that two processes created at once for the last slot is left unused
    trials = [t for t in study.trials if not is_void(t)]
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert len(study.trials) - len(trials) <= 2  # one per process that lost such a race
    owners = Counter(t.user_attrs["autodl.owner"] for t in trials)
    assert all(n >= 1 for n in ran) and len(owners) == 3  # search and both workers trained
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("pg").experiment_id])
    roles = Counter(r.data.tags.get("autodl.role") for r in runs)
    assert roles == {"study": 1, "trial": 12}  # one parent, every trial under it
    assert all(r.info.status == "FINISHED" for r in runs)
    summary = (tmp_path / "runs" / "pg" / "summary.json").read_text()
    assert '"complete": 12' in summary  # the search waited for the workers' trials


def test_worker_unknown_study_exits_2(capsys) -> None:
    assert main(["worker", "nope", "--no-tracking"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_worker_bad_study_name_exits_2(capsys) -> None:
    assert main(["worker", "../etc", "--no-tracking"]) == 2
    assert "not allowed" in capsys.readouterr().err


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_worker_stop_signal_leaves_no_child_process(tmp_path: Path, tiny_space: Path,
                                                    start_search, sig: str) -> None:
    """`autodl worker` stopped by a signal to it alone, mid-trial: every process it started
    (its trial workers, tracking) ends with it."""
    import contextlib
    import signal

    from tests.processes import alive, descendants
    from tests.waiting import wait_until

    start_search(str(tiny_space), "--trials", "60", "--epochs", "200", "--study", "kids",
                 "--pruner", "none", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "autodl", "worker", "kids", "--wait",
                               "120", "--quiet"], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "autodl.journal")))

    def training() -> bool:
        trials = optuna.load_study(study_name="kids", storage=storage).trials
        return any(t.state.name == "RUNNING" and str(t.user_attrs.get("autodl.owner", ""))
                   .endswith(f":{worker.pid}") for t in trials)

    try:
        wait_until(training, "a trial running in the worker", 180)
        started = descendants(worker.pid)
        assert started
        worker.send_signal(getattr(signal, sig))
        _, err = worker.communicate(timeout=120)
        assert worker.returncode in (130, 143), err
        wait_until(lambda: not alive(started), "every process the worker started gone", 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
