"""Worker processes as a long search sees them: out-of-memory trials, memory across many
trials, many workers on fresh stores."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import optuna
import pytest
import torch

import autodl
from autodl.data import load_data
from autodl.space import parse_space
from autodl.train import TensorData, Trainer
from autodl.workers._memory import resident_mb
from autodl.workers._trial import run_trial
from tests.conftest import TINY_SPACE


def _spec(number: int) -> dict:
    space = parse_space(TINY_SPACE).with_families(["mlp"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=number))
    return {"number": number, "config": space.sample(study.ask()), "epochs": 2,
            "objectives": [("accuracy", "maximize")], "seed": number}


def test_run_trial_out_of_memory_fails_alone_and_frees_its_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = TensorData.from_prepared(load_data("digits", seed=0), "cpu")
    assert run_trial(_spec(0), data, tmp_path, lambda e, m: False)["state"] == "COMPLETE"
    baseline = resident_mb()

    def exhausting(self: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.hog = torch.ones(64 * 1024**2)  # 256 MiB held when the allocation fails
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "batch_loss", exhausting)
        failed = run_trial(_spec(1), data, tmp_path, lambda e, m: False)
    assert (failed["state"], failed["reason"]) == ("FAIL", "oom")
    assert resident_mb() < baseline + 64  # the failed trial's 256 MiB went back
    assert run_trial(_spec(2), data, tmp_path, lambda e, m: False)["state"] == "COMPLETE"


def test_search_oversized_model_fails_with_oom_and_the_search_goes_on(tmp_path: Path) -> None:
    (tmp_path / "huge.yaml").write_text(
        "families:\n  mlp: {depth: 4, width: [8192, 16]}\noptimizer:\n  lr: 0.01\n")
    result = autodl.search(str(tmp_path / "huge.yaml"), data="iris", sampler="grid", trials=2,
                           epochs=2, tracking=False, export=False, study="huge",
                           trial_memory_gb=0.5)  # 8192-wide needs ~3 GiB: refused unbuilt
    study = optuna.load_study(study_name="huge", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    by_width = {t.params["mlp.width"]: t for t in study.trials}
    assert by_width[8192].state.name == "FAIL"
    assert by_width[8192].user_attrs["fail_reason"] == "oom"
    assert "--trial-memory-gb is 0.5" in by_width[8192].user_attrs["fail_detail"]
    assert by_width[16].state.name == "COMPLETE"
    assert result.best_trial == by_width[16].number


@pytest.mark.slow
def test_worker_memory_stays_flat_over_100_trials(tiny_space: Path) -> None:
    autodl.search(str(tiny_space), trials=100, epochs=1, workers=1, sampler="random",
                  pruner="none", tracking=False, export=False, study="flat", seed=0)
    study = optuna.load_study(study_name="flat", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    rss = [t.user_attrs["worker_rss_mb"] for t in sorted(study.trials, key=lambda t: t.number)]
    assert len(rss) == 100
    warm, last = statistics.median(rss[10:20]), statistics.median(rss[-10:])
    print(f"worker RSS after warm-up {warm:.1f} MiB, after 100 trials {last:.1f} MiB")
    assert last < warm * 1.05


REPEATS = int(os.environ.get("AUTODL_STRESS_REPEATS", "1"))  # 10 for the full check
# 64 trials are ~20 claims (singles and batched groups of up to 8) for the 8 workers: each
# claims again while the others run, and the budget runs out under contention; the fixed cost
# (8 workers, fresh stores) stays. 200 (and AUTODL_STRESS_REPEATS=10) for the full check.
STRESS_TRIALS = int(os.environ.get("AUTODL_STRESS_TRIALS", "64"))


@pytest.mark.slow
@pytest.mark.parametrize("store", ["default", "sqlite"])
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_eight_workers_on_fresh_stores_finish_the_exact_budget(
        tmp_path: Path, tiny_space: Path, store: str, attempt: int) -> None:
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'optuna.db'}" if store == "sqlite" else None
    autodl.search(str(tiny_space), trials=STRESS_TRIALS, epochs=1, workers=8, sampler="random",
                  pruner="none", export=False, study="many", storage=url, seed=attempt)
    storage = url or optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))
    trials = optuna.load_study(study_name="many", storage=storage).trials
    assert len(trials) == STRESS_TRIALS and len({t.number for t in trials}) == STRESS_TRIALS
    assert all(t.state.is_finished() for t in trials)  # none RUNNING or WAITING
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("many")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    child = [r for r in runs if r.data.tags.get("autodl.role") == "trial"]
    assert sorted(int(r.data.tags["autodl.trial"]) for r in child) == list(range(STRESS_TRIALS))
    assert all(r.info.status == "FINISHED" for r in runs)


def test_plan_slots_gives_cpu_workers_disjoint_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from autodl.workers import plan_slots

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    two = plan_slots("auto", workers=2)
    assert [s.cores for s in two] == [(0, 1), (2, 3)] and [s.threads for s in two] == [2, 2]
    assert all(s.cores == () for s in plan_slots("cpu", workers=8))  # more workers than cores


def test_plan_slots_cpu_default_is_a_single_threaded_worker_per_core(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from autodl.workers import WorkerPool, plan_slots

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    auto = plan_slots("cpu")
    assert [(s.threads, s.cores) for s in auto] == [(1, (c,)) for c in range(4)]
    one = plan_slots("cpu", one_cpu_worker=True)  # --seed, or pretrained backbones
    assert [(s.threads, s.cores) for s in one] == [(4, (0, 1, 2, 3))]
    pool = WorkerPool(auto)  # not started: fewer trials (or memory) than workers
    pool.keep(2)
    assert [(s.threads, s.cores) for s in pool.slots.values()] == [(2, (0, 1)), (2, (2, 3))]


def test_search_without_seed_trains_on_a_worker_per_core(tiny_space: Path) -> None:
    result = autodl.search(str(tiny_space), trials=4, epochs=2, tracking=False, export=False,
                           study="percore")
    study = optuna.load_study(study_name="percore", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    assert sum(result.trial_counts.values()) == 4
    workers = {tuple(t.user_attrs["cores"]) for t in study.trials}
    assert len(workers) == min(len(os.sched_getaffinity(0)), 4)  # each core's worker trained


def test_search_two_workers_run_on_their_own_cores(tiny_space: Path) -> None:
    autodl.search(str(tiny_space), trials=4, epochs=2, workers=2, tracking=False, export=False,
                  study="pinned")
    study = optuna.load_study(study_name="pinned", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    assert {t.user_attrs["device"] for t in study.trials} == {"cpu"}
    assert {t.user_attrs["precision"] for t in study.trials} == {"fp32"}  # no autocast on CPU
    cores = {tuple(t.user_attrs["cores"]) for t in study.trials}
    assert len(cores) == 2 and not set.intersection(*map(set, cores))  # disjoint sets


def test_run_group_hands_on_pruned_members_in_the_epoch_they_end(tmp_path: Path) -> None:
    """Members that end in one epoch come out together, in that epoch (a pruned trial
    need not wait for its group's survivors), with what training the group whole gives."""
    from autodl.workers._group import run_group, train_group
    from tests.test_train_batched import _data, _spec

    data = _data()
    specs = [_spec(i, {"name": "sgd", "lr": 0.05}, epochs=5) for i in range(4)]
    log: list[tuple[int, int]] = []

    def report(number: int, epoch: int, metrics: dict) -> bool:
        log.append((number, epoch))
        return number in (1, 2) and epoch == 2

    ended, reports_before = [], []
    for outcomes in run_group(specs, data, tmp_path / "a", report):
        ended.append(outcomes)
        reports_before.append(len(log))
    assert [[o["number"] for o in e] for e in ended] == [[1, 2], [0, 3]]
    assert reports_before == [8, 14]  # the pruned pair right after epoch 2, not at the end
    whole = train_group(specs, data, tmp_path / "b", lambda n, e, m: n in (1, 2) and e == 2)
    got = {o["number"]: o for e in ended for o in e}
    for o in whole:
        mine = got[o["number"]]
        assert (mine["state"], mine["epochs_run"], mine["values"]) == (
            o["state"], o["epochs_run"], o["values"])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_trials_save_their_best_epochs_validation_predictions(tmp_path: Path, task: str
                                                              ) -> None:
    """What ensemble selection reads: for a stacked group and a trial trained alone, the
    saved predictions are those of the saved (best-epoch) weights on the validation rows,
    as probabilities or in the targets' units."""
    import numpy as np

    from autodl.models import create_model
    from autodl.workers._group import run_group
    from tests.test_train_batched import _data, _spec

    data = _data(task)
    objective = [("accuracy", "maximize")] if task == "classification" else [("rmse", "minimize")]
    specs = [_spec(i, {"name": "adamw", "lr": 0.01}, epochs=4, objectives=objective)
             for i in range(4)]
    outcomes = [o for ended in run_group(specs[:3], data, tmp_path, lambda n, e, m: False)
                for o in ended]
    outcomes.append(run_trial(specs[3], data, tmp_path, lambda e, m: False))
    assert [o.get("batched", 1) for o in outcomes] == [3, 3, 3, 1]
    for spec, outcome in zip(specs, outcomes, strict=True):
        assert outcome["state"] == "COMPLETE"
        folder = tmp_path / "trials" / str(spec["number"])
        model = create_model("mlp", spec["config"]["model"], data.input_shape, data.n_outputs,
                             data.modality)
        model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
        with torch.no_grad():
            out = model.eval()(data.X_val)
        want = (torch.softmax(out, 1) if task == "classification"
                else out * data.y_std + data.y_mean).numpy()
        saved = np.load(folder / "predictions.npy")
        assert saved.shape == want.shape and np.abs(saved - want).max() < 1e-3


def test_run_refit_trains_on_validation_rows_too_and_never_on_the_test_split(
        tmp_path: Path) -> None:
    """Class 2 exists only in the validation rows: a model that learns to predict it saw
    them. The test split is all NaN: a refit that touched it would not be finite."""
    import json
    from types import SimpleNamespace

    import numpy as np

    from autodl.models import create_model
    from autodl.workers._refit import run_refit

    rng = np.random.default_rng(0)
    centers = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]], np.float32)
    y = np.repeat([0, 1, 2], 30)
    X = (centers[y] + rng.normal(size=(90, 2)) * 0.3).astype(np.float32)
    train, val = y < 2, y == 2
    ns = SimpleNamespace(
        modality="tabular", task="classification", n_outputs=3, input_shape=(2,),
        X_train=X[train], y_train=y[train], X_val=X[val], y_val=y[val],
        X_test=np.full((4, 2), np.nan, np.float32), y_test=np.zeros(4, np.int64),
        y_mean=None, y_std=None)
    data = TensorData.from_prepared(ns, "cpu")
    config = {"family": "mlp", "model": {"width": 16, "depth": 1, "dropout": 0.0},
              "optimizer": {"name": "adamw", "lr": 1e-2}, "schedule": {"name": "constant"},
              "training": {"batch_size": 32}}
    spec = {"number": 7, "config": config, "epochs": 6, "best_epoch": 4, "seed": 0,
            "objectives": [("accuracy", "maximize")], "amp": False}
    info = run_refit(spec, data, tmp_path)
    assert "error" not in info and info["samples"] == 90 and info["epochs"] == 4
    assert json.loads((tmp_path / "refit" / "7" / "refit.json").read_text())["trial"] == 7
    state = torch.load(tmp_path / "refit" / "7" / "weights.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values())
    model = create_model("mlp", config["model"], (2,), 3, "tabular")
    model.load_state_dict(state)
    with torch.no_grad():
        predicted = model.eval()(torch.as_tensor(X[val])).argmax(1)
    assert (predicted == 2).float().mean() > 0.9


def test_export_worker_exports_a_finished_trial_in_every_format(tiny_space: Path) -> None:
    """The warm export worker writes what a trial worker writes, checked against
    PyTorch in ONNX Runtime as every export is."""
    import json

    from autodl.export import FORMATS
    from autodl.workers import ExportWorker

    result = autodl.search(str(tiny_space), trials=1, epochs=1, seed=0, tracking=False,
                           export=False, out="run", study="ew")
    exporter = ExportWorker()
    try:
        assert exporter.ready(300) and exporter.warm_s is not None
        summary = exporter.export(Path("run"), result.best_trial, Path("run/model"),
                                  list(FORMATS), None)
    finally:
        exporter.close()
    assert summary is not None and summary["failed"] == {}
    assert set(summary["files"]) == set(FORMATS)
    config = json.loads(Path("run/model/config.json").read_text())
    assert config["family"] == result.summary["best"]["params"]["family"]
    assert not exporter.process.is_alive()
