"""MLflow as a user sees it: a real `mlflow server` over the search's store, the UI in a
real headless browser, and the run layout of DESIGN.md."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

import autodl
from autodl._group import stop_group
from autodl.backends._study import counted_trials
from autodl.errors import UsageError
from autodl.tracking import mlflow_params
from autodl.webui import experiment_url, mlflow_server_command
from tests.waiting import mlflow_client, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_space_text) -> dict:
    """A 4-trial search logged to SQLite, then a real `mlflow server` on loopback."""
    work = tmp_path_factory.mktemp("tracked")
    space = work / "tiny.yaml"
    space.write_text(tiny_space_text)
    old = Path.cwd()
    os.chdir(work)
    try:
        result = autodl.search(str(space), trials=4, epochs=3, study="tracked", seed=0,
                               register="tracked-best")
    finally:
        os.chdir(old)
    port = _free_port()
    cmd = mlflow_server_command(f"sqlite:///{work / 'mlflow.db'}", "127.0.0.1", port)
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its uvicorn worker ends with it
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        stop_group(proc)
        pytest.fail("mlflow server did not answer /health within 90 s")
    yield {"url": url, "result": result, "work": work}
    stop_group(proc)


@pytest.fixture(scope="module")
def tiny_space_text() -> str:
    from tests.conftest import TINY_SPACE

    return TINY_SPACE


def test_mlflow_server_shows_parent_and_one_child_per_trial(served) -> None:
    client = MlflowClient(tracking_uri=served["url"])
    exp = client.get_experiment_by_name("tracked")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("autodl.role") == "study"]
    children = [r for r in runs if r.data.tags.get("autodl.role") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["autodl.trial"]) for r in children) == [0, 1, 2, 3]
    assert all(r.info.status != "RUNNING" for r in runs)
    for child in children:
        assert child.data.tags["autodl.state"] in ("COMPLETE", "PRUNED", "FAIL")
        assert "family" in child.data.params and "optimizer.name" in child.data.params
        assert "optimizer.lr" in child.data.params
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        epochs_run = int(child.data.metrics["epochs_run"])
        assert [m.step for m in history] == list(range(1, epochs_run + 1))
        for key in ("train_loss", "val_loss", "epoch_time_s"):
            assert key in child.data.metrics


def test_mlflow_parent_holds_best_test_and_artifacts(served) -> None:
    client = MlflowClient(tracking_uri=served["url"])
    exp = client.get_experiment_by_name("tracked")
    parent = client.search_runs([exp.experiment_id], "tags.`autodl.role` = 'study'")[0]
    summary = served["result"].summary
    assert parent.data.metrics["best_value"] == pytest.approx(summary["best"]["value"])
    assert parent.data.metrics["test_accuracy"] == pytest.approx(summary["test"]["accuracy"])
    local = MlflowClient(tracking_uri=f"sqlite:///{served['work'] / 'mlflow.db'}")
    names = {a.path for a in local.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "config.json", "summary.json"} <= names
    assert summary["mlflow"]["parent_run_id"] == parent.info.run_id
    assert len(summary["mlflow"]["trial_run_ids"]) == 4


def test_mlflow_ui_in_headless_chromium_shows_child_runs(served, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (.ci/run installs Debian's chromium)"
    port = int(served["url"].rsplit(":", 1)[1])
    page_url = experiment_url(f"sqlite:///{served['work'] / 'mlflow.db'}", "127.0.0.1", port,
                              "tracked")
    shots = Path(os.environ.get("AUTODL_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_url)
        page.get_by_text("tracked", exact=True).last.wait_for(timeout=60_000)
        # the parent row's expander (a "+" button in the run-name cell) shows the children
        page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
        page.get_by_text("trial-0").first.wait_for(timeout=60_000)  # a child run is listed
        page.screenshot(path=str(shots / "mlflow_ui.png"))
        browser.close()
    assert (shots / "mlflow_ui.png").stat().st_size > 10_000
    assert not errors, errors


@pytest.fixture
def fluent_on_served(served, monkeypatch) -> Iterator[str]:
    """MLflow's fluent API (``mlflow.pyfunc.load_model("models:/...")``) on the served store
    for one test. ``mlflow.set_tracking_uri`` also sets MLFLOW_TRACKING_URI, which every
    later search (autodl honours it) would inherit: both are undone after the test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", served["url"])  # the old value comes back
    mlflow.set_tracking_uri(served["url"])
    yield served["url"]
    mlflow.set_tracking_uri(None)


def test_best_model_logged_on_parent_and_registered(served, fluent_on_served) -> None:
    """An MLflow 3 Logged Model of the parent run: pyfunc predicts what the exported PyTorch
    module predicts, through ``models:/<id>``, ``runs:/<parent>/model`` and the registry."""
    import mlflow.pyfunc
    import numpy as np
    import torch
    from mlflow.entities import LoggedModelStatus

    from autodl.export import load_model_dir

    fields = served["result"].summary["mlflow"]
    parent, model_id = fields["parent_run_id"], fields["model_id"]
    client = MlflowClient(tracking_uri=served["url"])
    exp = client.get_experiment_by_name("tracked")
    logged = client.search_logged_models([exp.experiment_id])
    assert [(m.model_id, m.source_run_id, m.name) for m in logged] == [(model_id, parent, "model")]
    assert logged[0].status == LoggedModelStatus.READY
    test = served["result"].summary["test"]  # the final model's scores, on the model too
    assert {m.key: m.value for m in logged[0].metrics} == {f"test_{k}": v for k, v in test.items()}
    assert fields["model_uri"] == f"models:/{model_id}"
    assert [o.model_id for o in client.get_run(parent).outputs.model_outputs] == [model_id]
    version = client.get_model_version("tracked-best", "1")
    assert version.source == f"models:/{model_id}"
    assert fields["registered_model"] == {"name": "tracked-best", "version": "1"}
    x = np.load(served["work"] / "runs" / "tracked" / "data.npz")["X_test"].astype(np.float32)
    with torch.no_grad():
        want = load_model_dir(served["work"] / "runs" / "tracked" / "model").module(
            torch.as_tensor(x)).numpy()
    for uri in (f"models:/{model_id}", f"runs:/{parent}/model", "models:/tracked-best/1"):
        got = np.asarray(mlflow.pyfunc.load_model(uri).predict(x))
        np.testing.assert_allclose(got, want, atol=1e-4)
    names = {a.path for a in client.list_artifacts(parent, "export")}
    assert {"export/model.onnx", "export/preprocessor.json"} <= names


def test_mlflow_params_respect_length_limits() -> None:
    params = mlflow_params({"family": "mlp", "model": {"x" * 300: "y" * 7000}})
    assert all(len(k) <= 250 and len(v) <= 6000 for k, v in params.items())


def test_ui_refuses_non_loopback_without_expose() -> None:
    with pytest.raises(UsageError, match="--expose"):
        mlflow_server_command("sqlite:///mlflow.db", "0.0.0.0", 5000)
    assert "0.0.0.0" in mlflow_server_command("sqlite:///mlflow.db", "0.0.0.0", 5000,
                                              expose=True)


def test_mlflow_keeps_the_epochs_a_killed_search_had_tracked(tmp_path: Path, tiny_space: Path,
                                                             start_search) -> None:
    """SIGKILL of the search process mid-trial: the epochs it had tracked are in MLflow (the
    tracking process writes what it was sent, then exits), not lost with the search."""
    import optuna

    proc = start_search(str(tiny_space), "--trials", "1", "--epochs", "400", "--study", "kill",
                        "--pruner", "none", "--no-export", stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "autodl.journal")))

    def reported() -> int:
        trials = optuna.load_study(study_name="kill", storage=storage).trials
        return max((len(t.intermediate_values) for t in trials), default=0)

    wait_until(lambda: reported() >= 8, "8 epochs reported", interval=0.3)
    proc.kill()  # the search process only: its workers and tracking process stay
    proc.wait(30)
    epochs = reported()

    def tracked() -> int:
        client = mlflow_client(tmp_path / "mlflow.db")
        exp = client.get_experiment_by_name("kill")
        runs = client.search_runs([exp.experiment_id], "tags.`autodl.role` = 'trial'")
        return len(client.get_metric_history(runs[0].info.run_id, "val_accuracy"))

    wait_until(lambda: tracked() >= epochs - 2, f"MLflow holding {epochs - 2} epochs",
               interval=0.3)
    assert not any(t.state.is_finished() for t in optuna.load_study(
        study_name="kill", storage=storage).trials)  # it was killed mid-trial


def test_new_sqlite_store_from_the_template_is_what_mlflow_creates(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """The first store migrates (and leaves a template in the cache); the next is a copy:
    both have MLflow's Default experiment with their own artifact location, and take runs."""
    from autodl.tracking._sqlite_store import ensure_sqlite_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("first", "copied"):
        work = tmp_path / name
        work.mkdir()
        monkeypatch.chdir(work)
        ensure_sqlite_store(f"sqlite:///{work / 'mlflow.db'}")
        client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
        found = client.search_experiments()
        assert [(e.experiment_id, e.name) for e in found] == [("0", "Default")]
        assert Path(found[0].artifact_location.removeprefix("file://")) == work / "mlruns" / "0"
        run = client.create_run(client.create_experiment("x")).info.run_id
        client.log_metric(run, "loss", 0.5, step=1)
        assert client.get_metric_history(run, "loss")[0].value == 0.5
    assert list((tmp_path / "cache" / "autodl").glob("mlflow-*-store.db"))


def test_search_logs_to_mlflow_tracking_uri_from_the_environment(tmp_path: Path,
                                                                  tiny_space: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    done = subprocess.run(["autodl", "search", str(tiny_space), "--trials", "1", "--epochs", "1",
                           "--study", "env", "--no-export", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the default store
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("env").experiment_id])
    assert {r.data.tags.get("autodl.role") for r in runs} == {"study", "trial"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ui_stop_signal_ends_the_mlflow_server_and_its_workers(tmp_path: Path, sig) -> None:
    """`autodl ui` stopped by a service manager (SIGTERM) or Ctrl-C (SIGINT) leaves no
    process it started (mlflow server, its uvicorn and job runner) and nothing listening."""
    from tests.processes import alive, descendants, listening

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autodl", "ui", "--port", str(port),
                             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    started: set[int] = set()
    try:
        wait_until(lambda: listening(port), "the MLflow UI listening", timeout=120)
        started = descendants(proc.pid)
        assert len(started) >= 2  # the server and at least its web worker
        proc.send_signal(sig)
        proc.wait(timeout=60)
        wait_until(lambda: not alive(started) and not listening(port),
                   "every process of the UI gone and the port closed", timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in alive(started):  # the server's own group, if the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _runs(db: Path, study: str) -> dict[str, list[tuple[str | None, str]]]:
    """Per role: (autodl.trial, status) of every run of ``study`` in the store ``db``."""
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(study)
    out: dict[str, list[tuple[str | None, str]]] = {}
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        tags = run.data.tags
        out.setdefault(tags.get("autodl.role", "?"), []).append(
            (tags.get("autodl.trial"), run.info.status, tags.get("autodl.state")))
    return out


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))


def _tracked_like_the_study(db: Path, name: str) -> None:
    """Nothing RUNNING; every trial the budget counts has a run that ended in its state."""
    runs = _runs(db, name)
    assert [s for role in runs.values() for _, s, _ in role if s == "RUNNING"] == []
    assert [s for _, s, _ in runs["study"]] == ["FINISHED"]
    ended = {int(n): (status, state) for n, status, state in runs["trial"]}
    for trial in counted_trials(_study(name)):
        status = "FINISHED" if trial.state.name in ("COMPLETE", "PRUNED") else "FAILED"
        assert ended[trial.number] == (status, trial.state.name)


def test_mlflow_truncated_store_exits_2_before_trial_1_then_a_new_store_catches_up(
        tiny_space: Path, tmp_path: Path, capsys) -> None:
    """mlflow.db cut to half its size: a search exits 2 at once, naming the file and what
    to do, without a traceback or a trial run; resumed with another --tracking-uri, the
    new store gets every trial the study finished."""
    from autodl.cli import main

    args = [str(tiny_space), "--trials", "2", "--epochs", "2", "--no-export", "--quiet"]
    assert main(["search", *args, "--study", "before"]) == 0
    db = tmp_path / "mlflow.db"
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)
    capsys.readouterr()
    assert main(["search", *args, "--study", "after"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {db}: the file is corrupt (the MLflow store)")
    assert "--tracking-uri" in err and "backup" in err
    assert "after" not in optuna.get_all_study_names(_study("before")._storage)

    fresh = tmp_path / "fresh.db"
    assert main(["search", *args, "--study", "before", "--resume", "--tracking-uri",
                 f"sqlite:///{fresh}"]) == 0
    _tracked_like_the_study(fresh, "before")
    assert len(_runs(fresh, "before")["trial"]) == 2


def test_mlflow_store_filling_mid_search_exits_1_and_resume_catches_up(
        tiny_space: Path, tmp_path: Path, small_disk, start_search) -> None:
    """The MLflow store's disk fills once trial 0 is tracked: the search stops with exit 1
    and one line naming mlflow.db (never an exit 0 with trials untracked); once space is
    freed, --resume tracks the trials it missed and ends every run, budget exact."""
    disk = small_disk("4m")
    db = disk.path / "mlflow.db"
    # many trials left when the disk fills, whatever the machine's speed
    args = [str(tiny_space), "--trials", "30", "--epochs", "10", "--pruner", "none",
            "--workers", "1", "--study", "filled", "--no-export",
            "--tracking-uri", f"sqlite:///{db}"]
    proc = start_search(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: ("0", "FINISHED", "COMPLETE") in _runs(db, "filled")["trial"],
               "trial 0 tracked as complete", interval=0.1)
    filler = disk.path / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:  # the disk is full from here on
            f.write(b"\0" * 4096)
    err = proc.communicate(timeout=300)[1].strip()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith(f"error: {db}: no space left on the device (the MLflow store)")
    assert "--resume --study filled" in last
    study = _study("filled")
    assert "RUNNING" not in [t.state.name for t in study.trials]

    filler.unlink()  # space freed
    done = subprocess.run([sys.executable, "-m", "autodl", "search", *args, "--resume"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(counted_trials(_study("filled"))) == 30
    _tracked_like_the_study(db, "filled")


class _FlakyStore:
    """A store for ``ProcessWriter`` whose writes fail with a full disk from ``fail_from``
    on; ``once`` fails a single time (a store busy for a moment)."""

    def __init__(self, fail_from: int, once: bool) -> None:
        self.calls, self.fail_from, self.once = 0, fail_from, once

    def write(self) -> int:
        self.calls += 1
        if self.calls == self.fail_from or (not self.once and self.calls > self.fail_from):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/mlflow.db")
        return self.calls

    def tick(self) -> None: ...


def test_tracking_process_retries_once_then_reports_a_failing_store() -> None:
    from autodl.tracking._process import ProcessWriter

    busy = ProcessWriter(_FlakyStore, (2, True))
    assert [busy.call("write", timeout=60) for _ in range(3)] == [1, 3, 4]  # 2 retried
    assert busy.failure() is None
    busy.close()

    full = ProcessWriter(_FlakyStore, (2, False))
    full.submit("write")
    full.submit("write")
    wait_until(lambda: full.failure() is not None, "the failure reported", timeout=60)
    assert full.failure() == {"method": "write", "kind": "full", "file": "/full/mlflow.db",
                              "detail": "/full/mlflow.db: no space left on the device"}
    full.close()
