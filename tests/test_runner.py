"""A search end to end through the Python API: summary.json, test metrics, family notes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

import autodl
from autodl.settings import DEFAULT_TRIALS, budget


def _search(space: str, **kw):
    kw.setdefault("tracking", False)
    kw.setdefault("export", False)
    return autodl.search(space, **kw)


def test_search_writes_summary_with_design_fields(tiny_space: Path) -> None:
    result = _search(str(tiny_space), trials=3, epochs=3, seed=0, study="fields")
    summary = json.loads((Path("runs") / "fields" / "summary.json").read_text())
    for key in ("study", "metric", "direction", "best", "test", "trials", "mlflow"):
        assert key in summary
    assert summary["metric"] == "accuracy" and summary["direction"] == "maximize"
    assert set(summary["best"]) >= {"trial", "value", "params"}
    assert set(summary["trials"]) == {"complete", "pruned", "failed"}
    assert set(summary["test"]) >= {"accuracy", "loss"}  # the test split, used once
    assert result.best_value == summary["best"]["value"]
    weights = Path("runs/fields/trials") / str(summary["best"]["trial"]) / "weights.pt"
    assert weights.is_file()


def test_search_leaves_out_families_that_do_not_fit(tmp_path: Path) -> None:
    space = tmp_path / "mixed.yaml"
    space.write_text("families:\n  mlp: {width: 16}\n  cnn: {channels: 4}\n  rnn: {hidden: 8}\n")
    result = _search(str(space), data="iris", trials=2, epochs=2)
    assert any("'cnn'" in n for n in result.notes) and any("'rnn'" in n for n in result.notes)
    assert result.best_params["family"] == "mlp"


def test_search_sequence_npz_runs_every_fitting_family(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 160)
    t = np.linspace(0, 6.28, 24)
    X = np.sin(t[None, :, None] * (1 + y[:, None, None])) + 0.3 * rng.normal(size=(160, 24, 2))
    np.savez(tmp_path / "seq.npz", X=X.astype(np.float32), y=y)
    space = tmp_path / "seq.yaml"
    space.write_text("families:\n  mlp: {width: 16}\n  cnn: {channels: 8, depth: 1}\n"
                     "  rnn: {hidden: 8}\n  transformer: {width: 8, heads: 2, depth: 1}\n")
    result = _search(str(space), data=str(tmp_path / "seq.npz"), trials=8, epochs=2,
                     sampler="random", pruner="none", seed=0)
    import optuna

    study = optuna.load_study(study_name=result.study, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    families = {t.user_attrs["config"]["family"] for t in study.trials}
    assert families == {"mlp", "cnn", "rnn", "transformer"}
    assert "accuracy" in result.test_metrics


def test_search_csv_regression_with_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=200)
    lines = ["a,b,c,price"] + [f"{r[0]},{r[1]},{r[2]},{v}" for r, v in zip(X, y, strict=True)]
    (tmp_path / "houses.csv").write_text("\n".join(lines))
    space = tmp_path / "reg.yaml"
    space.write_text("families:\n  mlp: {width: 32}\noptimizer:\n  lr: 0.01\n")
    result = _search(str(space), data=str(tmp_path / "houses.csv"), target="price", trials=2,
                     epochs=15)
    assert result.summary["metric"] == "rmse" and result.summary["direction"] == "minimize"
    assert result.best_value < 1.0  # the target's std is about 2.3
    assert "rmse" in result.test_metrics


def test_search_timeout_stops_launching(tiny_space: Path) -> None:
    result = _search(str(tiny_space), trials=1000, epochs=1, timeout=3)
    assert 1 <= sum(result.trial_counts.values()) < 1000


def test_search_small_data_cross_validates_refits_and_exports_the_refit(tmp_path: Path) -> None:
    import onnxruntime as ort

    from autodl.data import PreparedData

    space = tmp_path / "s.yaml"
    space.write_text("families:\n  mlp: {width: 16, depth: 1}\noptimizer:\n  lr: 0.01\n")
    _search(str(space), data="iris", trials=2, epochs=3, seed=0, study="cvrefit",
            out=str(tmp_path / "run"), storage=str(tmp_path / "j.journal"), export=True,
            ensemble=0)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    data = PreparedData.load(tmp_path / "run" / "data.npz")
    n = len(data.y_train) + len(data.y_val)
    assert summary["protocol"]["kind"] == "cv" and summary["protocol"]["k"] == 5
    assert summary["protocol"]["samples"] == n
    refit = summary["refit"]
    assert refit["trial"] == summary["best"]["trial"] and refit["samples"] == n
    assert refit["epochs"] == summary["best"]["best_epoch"]
    assert summary["model"]["refit"] is True
    # the exported model is the refit, and it is the one that was tested
    session = ort.InferenceSession(str(tmp_path / "run" / "model" / "model.onnx"))
    predicted = session.run(None, {"x": data.X_test})[0].argmax(1)
    assert (predicted == data.y_test).mean() == pytest.approx(summary["test"]["accuracy"])
    refit_weights = torch_load(tmp_path / "run" / "refit" / str(refit["trial"]) / "weights.pt")
    exported = torch_load(tmp_path / "run" / "model" / "state_dict.pt")
    assert all((refit_weights[k] == exported[k]).all() for k in refit_weights)


def test_search_no_refit_tests_the_best_trials_own_weights(tmp_path: Path) -> None:
    space = tmp_path / "s.yaml"
    space.write_text("defaults: {holdout: true}\nfamilies:\n  mlp: {width: 16, depth: 1}\n")
    _search(str(space), data="iris", trials=1, epochs=2, seed=0, study="norefit",
            out=str(tmp_path / "run"), storage=str(tmp_path / "j.journal"), refit=False,
            export=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["protocol"]["kind"] == "holdout"
    assert summary["refit"] == {"skipped": "--no-refit"} and summary["model"]["refit"] is False
    assert not (tmp_path / "run" / "refit").exists()


def test_search_ensemble_of_complementary_trials_is_refit_tested_and_exported(
        tmp_path: Path) -> None:
    """Two trials whose held-out predictions err on different samples (written so) make an
    ensemble that beats either: it is refit member by member, tested, and exported to
    formats that agree with its PyTorch module."""
    import mlflow.pyfunc
    import onnxruntime as ort
    import sklearn.datasets

    from autodl.data import PreparedData
    from autodl.export import load_model_dir, predict
    from autodl.summary import top_trials

    space = tmp_path / "s.yaml"
    space.write_text("families:\n  mlp: {width: 16, depth: 1}\noptimizer:\n  lr: 0.01\n")
    run, journal = tmp_path / "run", str(tmp_path / "j.journal")
    kw = {"data": "iris", "trials": 3, "epochs": 2, "seed": 0, "study": "ens", "out": str(run),
          "storage": journal, "pruner": "none"}
    _search(str(space), ensemble=0, **kw)
    study = optuna.load_study(study_name="ens", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)))
    ranked = [t.number for t in top_trials(study, 3)]
    assert len(ranked) == 3
    data = PreparedData.load(run / "data.npz")
    y = np.concatenate([data.y_train, data.y_val])  # out-of-fold rows: train + validation
    rows = np.arange(len(y))
    for number, right in ((ranked[0], rows < 0.55 * len(y)), (ranked[1], rows >= 0.45 * len(y))):
        p = np.zeros((len(y), 3), np.float32)
        p[rows, y], p[rows, (y + 1) % 3] = np.where(right, 0.8, 0.4), np.where(right, 0.2, 0.6)
        np.save(run / "trials" / str(number) / "predictions.npy", p)
    (run / "trials" / str(ranked[2]) / "predictions.npy").unlink()

    _search(str(space), resume=True, export=True, **kw)  # the end phase again, on them
    summary = json.loads((run / "summary.json").read_text())
    ensemble = summary["ensemble"]
    assert ensemble["chosen"] and ensemble["score"] == 1.0
    assert ensemble["single"]["score"] == pytest.approx(0.55, abs=0.01)
    assert {m["trial"]: m["weight"] for m in ensemble["members"]} == {
        ranked[0]: 0.5, ranked[1]: 0.5}
    assert all(m["refit"] for m in ensemble["members"]) and summary["model"]["ensemble"]
    n = len(y)
    assert summary["refit"]["samples"] == n and set(summary["refit"]["trials"]) == {
        str(ranked[0]), str(ranked[1])}
    model = run / "model"
    exported = torch_load(model / "state_dict.pt")  # the members are the refits
    for i, number in enumerate(ranked[:2]):
        member = torch_load(run / "refit" / str(number) / "weights.pt")
        assert all((exported[f"members.{i}.{k}"] == v).all() for k, v in member.items())
    # tested once, and every format gives the PyTorch module's outputs
    loaded = load_model_dir(model)
    import torch

    with torch.inference_mode():
        want = loaded.module(torch.as_tensor(data.X_test)).numpy()
    onnx = ort.InferenceSession(str(model / "model.onnx")).run(None, {"x": data.X_test})[0]
    pyfunc = np.asarray(mlflow.pyfunc.load_model(str(model / "mlflow")).predict(data.X_test))
    assert np.abs(onnx - want).max() < 1e-4 and np.abs(pyfunc - want).max() < 1e-4
    assert (want.argmax(1) == data.y_test).mean() == pytest.approx(summary["test"]["accuracy"])
    iris = sklearn.datasets.load_iris()
    raw = predict(model, iris.data)["proba"]
    x_all = loaded.preprocessor.transform(iris.data)
    onnx_all = ort.InferenceSession(str(model / "model.onnx")).run(None, {"x": x_all})[0]
    assert np.abs(raw - torch.softmax(torch.as_tensor(onnx_all), 1).numpy()).max() < 1e-4


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("given, defaults, expected", [
    ((None, None), (None, None), (DEFAULT_TRIALS, None)),
    ((None, None), (30, None), (30, None)),
    ((None, None), (None, 60.0), (None, 60.0)),  # a space's timeout alone: no trial budget
    ((None, None), (30, 60.0), (30, 60.0)),  # both: whichever comes first
    ((None, 8.0), (30, 60.0), (None, 8.0)),  # --timeout alone: not the space's trials
    ((5, None), (30, 60.0), (5, 60.0)),
    ((5, 8.0), (30, 60.0), (5, 8.0)),
])
def test_budget_flags_then_space_defaults(given, defaults, expected) -> None:
    assert budget(*given, *defaults) == expected


def test_search_space_timeout_without_trials_has_no_trial_budget(tmp_path: Path) -> None:
    space = tmp_path / "timed.yaml"
    space.write_text("defaults: {data: iris, epochs: 1, timeout: 2}\n"
                     "families:\n  mlp: {width: 8}\n")
    result = _search(str(space), study="timed")
    assert result.summary["budget"] == {"trials": None, "timeout": 2.0}
    assert result.summary["stopped"] == "timeout"


class _CountingSampler(optuna.samplers.RandomSampler):
    """A user's own sampler: Optuna's RandomSampler that counts what it samples."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.sampled = 0

    def sample_independent(self, study, trial, name, distribution):
        self.sampled += 1
        return super().sample_independent(study, trial, name, distribution)


def test_search_takes_optuna_sampler_and_pruner_objects(tiny_space: Path) -> None:
    sampler = _CountingSampler()
    result = _search(str(tiny_space), trials=2, epochs=2, study="objects", sampler=sampler,
                     pruner=optuna.pruners.NopPruner())
    assert result.trial_counts["complete"] == 2
    assert sampler.sampled > 0  # the caller's object drew the trials' parameters
    assert (result.summary["sampler"], result.summary["pruner"]) == ("_CountingSampler",
                                                                     "NopPruner")
    study = optuna.load_study(study_name="objects", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    recorded = study.user_attrs["autodl.settings"]  # what `autodl worker` would join with
    assert (recorded["sampler"], recorded["pruner"]) == ("_CountingSampler", "NopPruner")


def test_search_names_record_the_classes_that_searched(tiny_space: Path) -> None:
    result = _search(str(tiny_space), trials=1, epochs=2, sampler="random", pruner="median")
    assert (result.summary["sampler"], result.summary["pruner"]) == ("RandomSampler",
                                                                     "MedianPruner")


def test_search_rejects_a_sampler_that_is_not_optuna(tiny_space: Path) -> None:
    from autodl.errors import UsageError

    with pytest.raises(UsageError, match=r"sampler: expected a name or an "
                       r"optuna\.samplers\.BaseSampler, got 42"):
        _search(str(tiny_space), sampler=42)


def test_worker_asks_for_a_sampler_name_on_a_study_searched_with_an_object(
        tiny_space: Path, capsys) -> None:
    from autodl.cli import main

    _search(str(tiny_space), trials=1, epochs=2, study="obj",
            sampler=optuna.samplers.RandomSampler(seed=0))
    assert main(["worker", "obj", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert "searched with a RandomSampler object" in err and "--sampler NAME" in err


def test_search_leaves_the_callers_log_levels_alone(tiny_space: Path) -> None:
    import logging

    import mlflow  # noqa: F401  (MLflow sets its loggers up on import: before the search)

    names = ("optuna", "mlflow", "alembic", "root")
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        _search(str(tiny_space), trials=1, epochs=2, tracking=True)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
        assert {n: logging.getLogger(n).level for n in names} == levels
    finally:
        optuna.logging.set_verbosity(before)


_SCRIPT = """
import autodl
result = autodl.search("tiny.yaml", trials=1, epochs=2, tracking=False, export=False)
print("trials:", result.trial_counts)
"""


@pytest.mark.parametrize("how", ["stdin", "unguarded file"])
def test_search_from_a_script_on_stdin_or_without_main_guard(tiny_space: Path, how: str) -> None:
    """Workers start from autodl's modules: the caller's main is never run again (a script
    on stdin has no file to run; an unguarded one would start a search in every worker)."""
    import subprocess
    import sys

    args = [sys.executable, "-"] if how == "stdin" else [sys.executable, "script.py"]
    Path("script.py").write_text(_SCRIPT)
    done = subprocess.run(args, input=_SCRIPT, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trials: {'complete': 1, 'pruned': 0, 'failed': 0}" in done.stdout
