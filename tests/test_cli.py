"""The command line as a user meets it: exit codes, messages, and a cheap --help."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autodl.cli import main
from tests.waiting import mlflow_client, wait_until


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autodl", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_help_does_not_import_torch_mlflow_or_ray() -> None:
    code = ("import sys; from autodl.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'ray', 'optuna', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("body, line, fragment", [
    ("families:\n  mlp: {width: [1, 2}\n", 2, ""),  # syntax error
    ("families:\n  mlp:\n    widht: 3\n", 3, "widht"),  # unknown key
    ("families:\n  mlp: {}\noptimizer:\n  lr: {low: 0, high: 0.1, log: true}\n", 4, "low"),
    ("families:\n  mlpp: {}\n", 2, "mlpp"),  # unknown family
])
def test_search_bad_yaml_exits_2_naming_file_line_key(tmp_path: Path, body: str, line: int,
                                                       fragment: str, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    assert main(["search", str(path), "--data", "iris", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert f"bad.yaml:{line}:" in err and fragment in err
    assert not Path("runs").exists() and not Path("autodl.journal").exists()  # no trial ran


def test_search_yaml_over_the_size_limit_exits_2_unparsed(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("families:\n  mlp:\n    width: [" + ", ".join(["8"] * 600_000) + "]\n")
    assert main(["search", str(path), "--data", "iris", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert "big.yaml:" in err and "over the 1 MB limit" in err and "--max-yaml-mb" in err
    assert main(["spaces", "validate", str(path), "--max-yaml-mb", "0.5"]) == 2
    assert "over the 0.5 MB limit" in capsys.readouterr().err


def test_search_bad_data_exits_2(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--data", "nope.npz", "--no-tracking"]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_search_then_best_json(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--trials", "2", "--epochs", "2", "--study", "cli",
                 "--no-tracking", "--no-export", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["best", "cli", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["study"] == "cli" and best["best"]["params"]["family"] in ("mlp", "transformer")
    assert main(["best", "missing"]) == 2


def test_spaces_list_show_validate(capsys) -> None:
    assert main(["spaces", "list"]) == 0
    assert "quickstart" in capsys.readouterr().out
    assert main(["spaces", "show", "quickstart"]) == 0
    assert "families:" in capsys.readouterr().out
    assert main(["spaces", "validate", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "mlp: ok" in out and "cnn: ok" in out


def test_spaces_validate_steps_every_optimizer_and_schedule(tmp_path: Path, capsys) -> None:
    """A value torch's constructor refuses (a beta past 1) is found by validate, naming
    the option; good torch.optim options take one step each."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("families: {mlp: {}}\noptimizer:\n  options: [nadam, sgd]\n"
                    "schedule:\n  options: {ReduceLROnPlateau: {}, StepLR: {step_size: 2}}\n")
    bad.write_text("families: {mlp: {}}\noptimizer:\n  options:\n"
                   "    radam: {betas: [1.5, 0.99]}\n")
    assert main(["spaces", "validate", str(good), "--data", "iris"]) == 0
    assert "optimizers nadam, sgd; schedules ReduceLROnPlateau, StepLR: ok" in (
        capsys.readouterr().out)
    assert main(["spaces", "validate", str(bad), "--data", "iris"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: optimizer.options.radam:" in err and "beta" in err


def test_datasets_list(capsys) -> None:
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "synthetic:sequence" in out


def test_search_bad_flag_values_exit_2(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--trials", "0", "--no-tracking"]) == 2
    assert main(["search", str(tiny_space), "--study", "../evil", "--no-tracking"]) == 2
    assert "not allowed" in capsys.readouterr().err


def test_search_timeout_alone_runs_until_the_time_is_up(tiny_space: Path, capsys) -> None:
    """The space's ``defaults.trials`` (4) does not apply when only --timeout is given."""
    assert main(["search", str(tiny_space), "--timeout", "2", "--epochs", "1", "--study", "tmo",
                 "--no-tracking", "--no-export"]) == 0
    summary = json.loads(Path("runs/tmo/summary.json").read_text())
    assert summary["budget"] == {"trials": None, "timeout": 2.0}
    assert summary["stopped"] == "timeout"
    err = " ".join(capsys.readouterr().err.split())  # unwrapped
    assert "trials for 2s" in err and "(stopped: timeout)" in err and "None" not in err


def _storage(url: str | None, workdir: Path):
    import optuna

    if url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "autodl.journal")))


def _wait_for_finished_trial(workdir: Path, url: str | None = None,
                             timeout: float = 120.0) -> None:
    import optuna

    storage = None

    def finished() -> bool:
        nonlocal storage
        storage = storage or _storage(url, workdir)  # opened once it can be
        names = optuna.get_all_study_names(storage)
        return bool(names) and any(t.state.is_finished() for t in optuna.load_study(
            study_name=names[0], storage=storage).trials)

    wait_until(finished, "a finished trial", timeout)


def _wait_for_checkpoint(out: Path, timeout: float = 120.0) -> None:
    """A running trial has written its resume checkpoint (finished trials remove theirs)."""
    wait_until(lambda: any((out / "trials").glob("*/checkpoint.json")),
               "a running trial's checkpoint", timeout, interval=0.2)


def _wait_for_running_child_run(db: Path, timeout: float = 120.0) -> None:
    def running() -> bool:
        client = mlflow_client(db)
        ids = [e.experiment_id for e in client.search_experiments()] if client else []
        runs = client.search_runs(ids, "attributes.status = 'RUNNING'") if ids else []
        return any(r.data.tags.get("autodl.role") == "trial" for r in runs)

    wait_until(running, "a RUNNING trial run in MLflow", timeout)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_search_interrupted_then_resumed(tmp_path: Path, tiny_space: Path, start_search,
                                         sig, code) -> None:
    import optuna
    from mlflow import MlflowClient

    args = [str(tiny_space), "--trials", "6", "--epochs", "40", "--study", "intr",
            "--pruner", "none", "--workers", "1"]  # one trial in flight when stopped
    proc = start_search(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_finished_trial(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "--resume" in err
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "autodl.journal")))
    trials = optuna.load_study(study_name="intr", storage=storage).trials
    assert not any(t.state.name == "RUNNING" for t in trials)
    stopped = [t for t in trials if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(stopped) == 1  # the trial in flight, recorded as failed: interrupted
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("intr")
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))
    # the resumed search exports nothing: export after a resume is the batched test's
    done = _run("search", *args, "--epochs", "2", "--resume", "--no-export", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="intr", storage=storage).trials
    counted = [t for t in trials if not _void(t)]
    assert len([t for t in counted if t.state.is_finished()]) == 6  # the budget stays exact
    requeued = [t for t in trials if "autodl.requeued_from" in t.user_attrs]
    assert {t.user_attrs["autodl.requeued_from"] for t in requeued} == {
        t.number for t in stopped}


@pytest.mark.slow
def test_search_interrupted_in_a_batched_group_resumes_every_member(tmp_path: Path) -> None:
    import optuna

    space = tmp_path / "mlps.yaml"
    space.write_text("families:\n  mlp: {width: 16, dropout: {low: 0.0, high: 0.2}}\n"
                     "optimizer:\n  lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n")
    args = [str(space), "--data", "digits", "--trials", "8", "--batch-trials", "4",
            "--workers", "1",
            "--epochs", "2000", "--study", "grp", "--pruner", "none"]
    proc = subprocess.Popen([sys.executable, "-m", "autodl", "search", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_running_child_run(tmp_path / "mlflow.db")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "autodl.journal")))
    trials = optuna.load_study(study_name="grp", storage=storage).trials
    assert not any(t.state.name == "RUNNING" for t in trials)
    stopped = [t for t in trials if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(stopped) == 4  # the whole group in flight, each member re-queued
    done = _run("search", *[a if a != "2000" else "2" for a in args], "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="grp", storage=storage).trials
    counted = [t for t in trials if not _void(t)]
    assert len(counted) == 8 and all(t.state.name == "COMPLETE" for t in counted)
    reruns = {t.user_attrs.get("autodl.requeued_from"): t for t in counted}
    for t in stopped:  # each member's re-run has its parameters
        assert reruns[t.number].params == t.params


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["default", "sqlite"])
def test_search_killed_then_resumed_continues_the_killed_trial(tmp_path: Path, tiny_space: Path,
                                                               start_search, storage: str) -> None:
    import optuna
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'optuna.db'}" if storage == "sqlite" else None
    epochs = 150  # iris: 3-6 passes an epoch (8 steps at least); long enough to kill mid-way
    args = [str(tiny_space), "--trials", "2", "--epochs", str(epochs), "--study", "k9",
            "--pruner", "none", "--workers", "1",  # trial 1 mid-way once trial 0 is done
            *(["--storage", url] if url else [])]
    proc = start_search(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_finished_trial(tmp_path, url)
    _wait_for_running_child_run(tmp_path / "mlflow.db")  # mid-trial, as tracked
    _wait_for_checkpoint(tmp_path / "runs" / "k9")
    proc.kill()
    proc.wait(30)
    before = optuna.load_study(study_name="k9", storage=_storage(url, tmp_path)).trials
    killed = [t for t in before if t.state.name == "RUNNING"]
    finished = {t.number: (t.params, t.values) for t in before if t.state.is_finished()}
    assert len(killed) == 1 and finished
    done = _run("search", *args, "--resume", "--no-export", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = optuna.load_study(study_name="k9", storage=_storage(url, tmp_path)).trials
    for number, (params, values) in finished.items():  # kept, not re-run
        assert (after[number].params, after[number].values) == (params, values)
    assert after[killed[0].number].user_attrs["fail_reason"] == "interrupted"
    rerun = [t for t in after if t.user_attrs.get("autodl.requeued_from") == killed[0].number]
    assert len(rerun) == 1 and rerun[0].params == killed[0].params
    assert rerun[0].state.name == "COMPLETE"
    assert rerun[0].user_attrs["resumed_from_epoch"] >= 1  # from the checkpoint, not epoch 0
    assert rerun[0].user_attrs["epochs_run"] == epochs
    assert (tmp_path / "runs" / "k9" / "trials" / str(rerun[0].number) / "weights.pt").is_file()
    counted = [t for t in after if not _void(t)]
    assert len(counted) == 2 and all(t.state.is_finished() for t in counted)  # exact budget
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("k9").experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    by_trial = {r.data.tags.get("autodl.trial"): r for r in runs}
    assert by_trial[str(killed[0].number)].info.status == "KILLED"
    history = client.get_metric_history(by_trial[str(rerun[0].number)].info.run_id,
                                        "val_accuracy")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))  # replayed + continued


@pytest.mark.slow
def test_search_second_ctrl_c_exits_at_once(tmp_path: Path, tiny_space: Path,
                                            start_search) -> None:
    import optuna

    args = [str(tiny_space), "--trials", "3", "--epochs", "400", "--study", "cc",
            "--pruner", "none"]
    proc = start_search(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_running_child_run(tmp_path / "mlflow.db")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    trials = optuna.load_study(study_name="cc", storage=_storage(None, tmp_path)).trials
    assert not any(t.state.name == "RUNNING" for t in trials)  # still recorded, not torn
    assert any(t.user_attrs.get("fail_reason") == "interrupted" for t in trials)


def _void(trial) -> bool:  # an optuna FrozenTrial
    """Re-queued (its copy ran) or unused (claimed for the budget, never run): counted
    nowhere, as summary.json's counts."""
    return bool(trial.user_attrs.get("autodl.requeued") or trial.user_attrs.get("autodl.unused"))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_search_stop_signal_leaves_no_child_process(tmp_path: Path, tiny_space: Path,
                                                    start_search, sig, code) -> None:
    """SIGTERM (kill, a service manager) or SIGINT to the search alone, not its group: its
    workers, the tracking process and multiprocessing's helpers all end with it."""
    from tests.processes import alive, descendants

    proc = start_search(str(tiny_space), "--trials", "60", "--epochs", "200", "--study",
                        "kids", "--pruner", "none", stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
    _wait_for_finished_trial(tmp_path)
    started = descendants(proc.pid)
    assert started  # at least a worker and the tracking process
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    wait_until(lambda: not alive(started), "every process the search started gone", 60)


def _leftovers(directory: Path) -> list[str]:
    """Temporary files and folders a search writes before renaming them into place."""
    patterns = ("*.tmp", ".*.init-*", ".*.staging-*", "*.repair")
    return sorted(str(p) for pattern in patterns for p in directory.rglob(pattern))


@pytest.mark.parametrize("size, tracked", [("560k", False), ("3m", True)])
def test_search_on_a_full_disk_exits_1_in_one_line_then_resume_completes_the_budget(
        tiny_space: Path, small_disk, size: str, tracked: bool) -> None:
    """Everything (journal, mlflow.db, runs/) on a small disk that fills during the search:
    exit 1, one line naming the file that could not be written and what to do, no
    traceback, no temporary file left; once the disk grows, --resume ends with exactly
    --trials finished trials, none RUNNING in the study or in MLflow."""
    import optuna

    from autodl.backends._study import counted_trials

    disk = small_disk(size)
    shutil.copy(tiny_space, disk.path / "tiny.yaml")
    args = ["search", "tiny.yaml", "--trials", "4", "--epochs", "2", "--study", "full",
            "--seed", "0", *([] if tracked else ["--no-tracking"])]
    done = _run(*args, cwd=disk.path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no space left on the device" in last
    assert "--resume --study full" in last
    assert _leftovers(disk.path) == []

    disk.resize("50m")
    done = _run(*args, "--resume", cwd=disk.path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="full", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(disk.path / "autodl.journal"))))
    counted = counted_trials(study)
    assert len(counted) == 4 and {t.state.name for t in counted} <= {"COMPLETE", "PRUNED"}
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert _leftovers(disk.path) == [] and (disk.path / "runs/full/report.html").is_file()
    if not tracked:
        return
    client = mlflow_client(disk.path / "mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    assert {r.data.tags["autodl.trial"] for r in runs if r.data.tags.get("autodl.role")
            == "trial" and r.data.tags.get("autodl.state") in ("COMPLETE", "PRUNED")} == {
        str(t.number) for t in counted}


def test_search_debug_shows_the_traceback_a_storage_error_hides(tiny_space: Path,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"not a database, " * 512)
    plain = _run("search", str(tiny_space), "--study", "x", cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith(f"error: {tmp_path / 'mlflow.db'}: the file is corrupt")
    debug = _run("search", str(tiny_space), "--study", "x", "--debug", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert "the file is corrupt" in debug.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag, value, store", [
    ("--storage", "{disk}/autodl.journal", "the study storage"),
    ("--tracking-uri", "sqlite:///{disk}/mlflow.db", "the MLflow store"),
    ("--out", "{disk}/run", "the output folder"),
])
def test_search_on_a_read_only_disk_exits_2_naming_the_store(
        tiny_space: Path, small_disk, flag: str, value: str, store: str) -> None:
    disk = small_disk("1m")
    disk.read_only()
    done = _run("search", str(tiny_space), "--study", "ro", flag, value.format(disk=disk.path),
                *(["--no-tracking"] if flag != "--tracking-uri" else []))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {disk.path}/")
    assert f"the file system is read-only ({store}); make it writable or point {flag} " \
        "elsewhere" in last
