"""Batched trials: K stacked MLPs train like K sequential ``run_trial`` calls.

Without dropout a member's per-epoch metrics and best-epoch weights equal the sequential
run's up to floating-point rounding; with dropout only in distribution.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from autodl.models import create_model
from autodl.space._space import with_defaults
from autodl.train import TensorData, TrialStopped, evaluate
from autodl.train._metrics import classification_metrics, regression_metrics
from autodl.train.batched import group_key
from autodl.train.batched._metrics import (
    group_classification_metrics,
    group_regression_metrics,
)
from autodl.train.batched._mlp import BatchedMLP
from autodl.train.batched._optim import BatchedOptimizer
from autodl.workers._group import train_group
from autodl.workers._trial import run_trial, weights_path

METRIC_TOL = 2e-5  # losses after a few epochs; weights: rtol 1e-4, atol 1e-5


def _data(task: str = "classification", modality: str = "tabular", n: int = 240) -> TensorData:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    shape = (1, 4, 4) if modality == "image" else (6,)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    X.reshape(n, -1)[:, :3] += np.eye(3, dtype=np.float32)[y] * 1.5
    flat = X.reshape(n, -1)
    target = y if task == "classification" else (flat[:, :4].sum(1) * 3 + 10).astype(np.float32)
    cut = n * 3 // 4
    ns = SimpleNamespace(
        modality=modality, task=task, n_outputs=3 if task == "classification" else 1,
        input_shape=shape, X_train=X[:cut], y_train=target[:cut], X_val=X[cut:],
        y_val=target[cut:], X_test=None, y_test=None,
        y_mean=None if task == "classification" else float(target[:cut].mean()),
        y_std=None if task == "classification" else float(target[:cut].std()),
    )
    return TensorData.from_prepared(ns, "cpu")


def _spec(number: int, optimizer: dict, *, model: dict | None = None,
          schedule: dict | None = None, training: dict | None = None, epochs: int = 4,
          objectives: list | None = None, seed: int | None = None) -> dict[str, Any]:
    config = with_defaults({
        "family": "mlp",
        "model": {"width": 16, "depth": 2, "dropout": 0.0, **(model or {})},
        "optimizer": optimizer,
        "schedule": schedule or {"name": "constant"},
        "training": {"batch_size": 32, **(training or {})},
    })
    return {"number": number, "config": config, "epochs": epochs, "seed": 100 + number
            if seed is None else seed, "objectives": objectives or [("accuracy", "maximize")]}


def _sequential(specs: list[dict], data: TensorData, out: Path, prune: Any = None
                ) -> tuple[list[dict], dict[int, list[dict]]]:
    histories: dict[int, list[dict]] = defaultdict(list)
    outcomes = []
    for spec in specs:
        def report(epoch: int, metrics: dict, n: int = spec["number"]) -> bool:
            histories[n].append(metrics)
            return bool(prune and prune(n, epoch))

        outcomes.append(run_trial(spec, data, out, report))
    return outcomes, histories


def _batched(specs: list[dict], data: TensorData, out: Path, prune: Any = None
             ) -> tuple[list[dict], dict[int, list[dict]]]:
    histories: dict[int, list[dict]] = defaultdict(list)

    def report(n: int, epoch: int, metrics: dict) -> bool:
        histories[n].append(metrics)
        return bool(prune and prune(n, epoch))

    return train_group(specs, data, out, report), histories


def _assert_metrics_close(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if key != "epoch_time_s":
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=METRIC_TOL), key


def _assert_same(tmp: Path, seq: list[dict], bat: list[dict], seq_hist: dict,
                 bat_hist: dict) -> None:
    for s, b in zip(seq, bat, strict=True):
        for key in ("number", "state", "reason", "best_epoch", "epochs_run", "params_count",
                    "stop_reason"):
            assert b.get(key) == s.get(key), (key, s, b)
        _assert_metrics_close(s["metrics"], b["metrics"])
        if s["values"] is None:
            assert b["values"] is None
        else:
            assert b["values"] == pytest.approx(s["values"], rel=1e-4, abs=METRIC_TOL)
        assert len(bat_hist[s["number"]]) == len(seq_hist[s["number"]])
        for hs, hb in zip(seq_hist[s["number"]], bat_hist[s["number"]], strict=True):
            _assert_metrics_close(hs, hb)
        if s["state"] == "COMPLETE":
            ws = torch.load(weights_path(tmp / "seq", s["number"]), weights_only=True)
            wb = torch.load(weights_path(tmp / "bat", s["number"]), weights_only=True)
            assert list(wb) == list(ws)
            for key in ws:
                torch.testing.assert_close(wb[key], ws[key], rtol=1e-4, atol=1e-5)


def _compare(tmp: Path, specs: list[dict], data: TensorData, prune: Any = None
             ) -> list[dict]:
    seq, seq_hist = _sequential(specs, data, tmp / "seq", prune)
    bat, bat_hist = _batched(specs, data, tmp / "bat", prune)
    _assert_same(tmp, seq, bat, seq_hist, bat_hist)
    return bat


OPTIMIZER_MEMBERS = {
    "sgd": [{"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
            {"lr": 0.1, "momentum": 0.0},
            {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.05}],
    "adam": [{"lr": 1e-2, "beta1": 0.8, "weight_decay": 1e-2},
             {"lr": 3e-3, "beta2": 0.99, "eps": 1e-6},
             {"lr": 2e-2}],
    "adamw": [{"lr": 1e-2, "weight_decay": 0.1},
              {"lr": 5e-3, "beta1": 0.85, "weight_decay": 0.0},
              {"lr": 2e-2, "eps": 1e-5, "weight_decay": 0.01}],
    "rmsprop": [{"lr": 1e-3, "alpha": 0.9, "momentum": 0.5},
                {"lr": 3e-3, "weight_decay": 1e-2},
                {"lr": 5e-4, "momentum": 0.9, "alpha": 0.95}],
}
SCHEDULES = [{"name": "constant"}, {"name": "cosine", "warmup_epochs": 1},
             {"name": "step", "step_size": 1, "gamma": 0.5}, {"name": "onecycle"}]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_MEMBERS))
def test_train_group_matches_sequential_per_optimizer(tmp_path: Path, optimizer: str) -> None:
    """Members differ in lr, weight decay, the optimizer's own parameters, schedule, label
    smoothing, gradient clipping, seed and epochs; each equals its sequential run."""
    training = [{}, {"label_smoothing": 0.1}, {"grad_clip": 0.5}]
    specs = [_spec(i, {"name": optimizer, **params}, schedule=SCHEDULES[i % 4],
                   training=training[i], epochs=3 + i % 2)
             for i, params in enumerate(OPTIMIZER_MEMBERS[optimizer])]
    specs.append(_spec(3, {"name": optimizer, **OPTIMIZER_MEMBERS[optimizer][0]},
                       schedule=SCHEDULES[3]))
    bat = _compare(tmp_path, specs, _data())
    assert [o["state"] for o in bat] == ["COMPLETE"] * 4
    assert [o["epochs_run"] for o in bat] == [3, 4, 3, 4]
    assert all(o["batched"] == 4 for o in bat)


@pytest.mark.parametrize(("model", "task", "optimizer"), [
    ({"activation": "relu", "residual": True, "depth": 3}, "classification", "adamw"),
    ({"activation": "gelu", "norm": "layer"}, "classification", "adamw"),
    # a bias before batch norm has a zero gradient up to rounding, which Adam would
    # normalise into full steps: SGD keeps that rounding noise out of the comparison
    ({"activation": "tanh", "norm": "batch", "residual": True}, "classification", "sgd"),
    ({"activation": "silu"}, "regression", "adamw"),
    ({"activation": "leaky_relu", "depth": 1}, "regression", "adam"),
    ({"activation": "gelu", "residual": True, "width": 6}, "classification", "rmsprop"),
])
def test_train_group_matches_sequential_per_architecture(tmp_path: Path, model: dict,
                                                         task: str, optimizer: str) -> None:
    objective = [("accuracy", "maximize")] if task == "classification" else [("rmse",
                                                                               "minimize")]
    specs = [_spec(i, {"name": optimizer, "lr": lr}, model=model, objectives=objective)
             for i, lr in enumerate([3e-3, 1e-2, 3e-2])]
    bat = _compare(tmp_path, specs, _data(task))
    assert {o["state"] for o in bat} == {"COMPLETE"}


def test_train_group_augmented_images_match_sequential(tmp_path: Path) -> None:
    """Each member's augmentation draws come from its own seeded generator, as in
    ``Trainer``."""
    specs = [_spec(i, {"name": "sgd", "lr": 0.05 * (i + 1)},
                   training={"augment": True, "hflip": True}) for i in range(3)]
    _compare(tmp_path, specs, _data(modality="image"))


def test_train_group_pruned_members_drop_out(tmp_path: Path) -> None:
    specs = [_spec(i, {"name": "adam", "lr": 1e-3 * (i + 1)}, epochs=5) for i in range(4)]
    pruned_at = {1: 2, 3: 1}

    def prune(number: int, epoch: int) -> bool:
        return pruned_at.get(number) == epoch

    seen: dict[int, list[int]] = defaultdict(list)

    def report(number: int, epoch: int, metrics: dict) -> bool:
        seen[number].append(epoch)
        return prune(number, epoch)

    bat = _compare(tmp_path, specs, _data(), prune)
    assert [o["state"] for o in bat] == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [o["epochs_run"] for o in bat] == [5, 2, 5, 1]
    assert bat[1]["reason"] == "pruned" and bat[1]["detail"] == "pruned at epoch 2"
    assert not weights_path(tmp_path / "bat", 1).exists()
    train_group(specs, _data(), tmp_path / "again", report)
    assert seen == {0: [1, 2, 3, 4, 5], 1: [1, 2], 2: [1, 2, 3, 4, 5], 3: [1]}


def test_train_group_non_finite_member_fails_alone(tmp_path: Path) -> None:
    specs = [_spec(0, {"name": "sgd", "lr": 0.05}),
             _spec(1, {"name": "sgd", "lr": 1e12, "momentum": 0.9}),
             _spec(2, {"name": "sgd", "lr": 0.1})]
    bat = _compare(tmp_path, specs, _data())
    assert [o["state"] for o in bat] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert bat[1]["reason"] == "non_finite" and bat[1]["epochs_run"] == 1


def test_train_group_early_stopping_is_per_member(tmp_path: Path) -> None:
    specs = [_spec(0, {"name": "sgd", "lr": 0.0}, training={"early_stopping": 1}, epochs=6),
             _spec(1, {"name": "sgd", "lr": 0.05}, epochs=6)]
    bat = _compare(tmp_path, specs, _data())
    assert bat[0]["stop_reason"] == "early_stopping" and bat[0]["epochs_run"] == 2
    assert bat[1]["stop_reason"] == "epochs" and bat[1]["epochs_run"] == 6


def test_train_group_cost_objectives_match_sequential(tmp_path: Path) -> None:
    objectives = [("loss", "minimize"), ("params", "minimize"), ("latency_ms", "minimize")]
    specs = [_spec(i, {"name": "adamw", "lr": 1e-2}, objectives=objectives) for i in range(2)]
    seq, _ = _sequential(specs, _data(), tmp_path / "seq")
    bat, _ = _batched(specs, _data(), tmp_path / "bat")
    for s, b in zip(seq, bat, strict=True):
        assert b["values"][:2] == pytest.approx(s["values"][:2], rel=1e-4)
        assert b["values"][2] > 0


def test_train_group_saved_weights_load_into_create_model(tmp_path: Path) -> None:
    data = _data()
    specs = [_spec(i, {"name": "adamw", "lr": 1e-2 * (i + 1)},
                   model={"norm": "batch", "dropout": 0.2}) for i in range(3)]
    bat, _ = _batched(specs, data, tmp_path)
    for spec, outcome in zip(specs, bat, strict=True):
        config = json.loads((tmp_path / "trials" / str(spec["number"]) / "config.json")
                            .read_text())
        assert config == spec["config"]
        model = create_model("mlp", config["model"], data.input_shape, data.n_outputs,
                             data.modality)
        model.load_state_dict(torch.load(weights_path(tmp_path, spec["number"]),
                                         weights_only=True))
        val = evaluate(model, data, data.X_val, data.y_val)
        for key, value in val.items():
            assert outcome["metrics"][f"val_{key}"] == pytest.approx(value, abs=1e-5)


def test_train_group_dropout_is_statistically_equivalent(tmp_path: Path) -> None:
    """Different masks than the sequential runs, so only the accuracy level agrees."""
    specs = [_spec(i, {"name": "adamw", "lr": 1e-2}, model={"dropout": 0.3}, epochs=6)
             for i in range(6)]
    seq, _ = _sequential(specs, _data(), tmp_path / "seq")
    bat, _ = _batched(specs, _data(), tmp_path / "bat")
    seq_acc = np.mean([o["metrics"]["val_accuracy"] for o in seq])
    bat_acc = np.mean([o["metrics"]["val_accuracy"] for o in bat])
    assert bat_acc == pytest.approx(seq_acc, abs=0.05)
    assert bat[0]["metrics"]["train_loss"] != seq[0]["metrics"]["train_loss"]


@pytest.mark.parametrize("rates", [[0.0, 0.1, 0.5, 0.9], [0.3, 0.3]])
def test_batched_mlp_dropout_keeps_each_members_rate(rates: list[float]) -> None:
    models = [create_model("mlp", {"width": 8}, (4,), 2, "tabular") for _ in rates]
    batched = BatchedMLP(models, rates, torch.device("cpu"))
    noise = batched.noise(torch.zeros(len(rates), 512, 256))
    for k, p in enumerate(rates):
        kept = (noise[k] > 0).float().mean().item()
        assert kept == pytest.approx(1 - p, abs=0.01)
        assert noise[k].mean().item() == pytest.approx(1.0, abs=0.02)  # unbiased


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_batched_optimizer_fused_matches_tensor_ops(optimizer: str) -> None:
    configs = [_spec(i, {"name": optimizer, **params}, schedule=SCHEDULES[i])["config"]
               for i, params in enumerate(OPTIMIZER_MEMBERS[optimizer])]
    torch.manual_seed(0)
    start, grads = torch.randn(3, 50), [torch.randn(3, 50) for _ in range(8)]
    results = []
    for fused in (True, False):
        flat, grad = start.clone(), torch.zeros(3, 50)
        opt = BatchedOptimizer(flat, grad, configs, [2, 2, 2], 4, fused=fused)
        for t, g in enumerate(grads):
            grad.copy_(g)
            opt.step(t)
        results.append(flat)
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_group_metrics_match_per_model_metrics() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(4, 50, 5), torch.randint(0, 4, (50,))  # class 4 never present
    for k, metrics in enumerate(group_classification_metrics(logits, y, 5)):
        assert metrics == pytest.approx(classification_metrics(logits[k], y, 5), abs=1e-6)
    pred, target = torch.randn(3, 40, 1), torch.randn(40) * 3 + 2
    mean, std = torch.tensor(2.0), torch.tensor(3.0)
    for k, metrics in enumerate(group_regression_metrics(pred, target, mean, std)):
        assert metrics == pytest.approx(regression_metrics(pred[k], target, mean, std),
                                        abs=1e-6)


def test_train_group_search_stop_interrupts_every_member(tmp_path: Path) -> None:
    specs = [_spec(i, {"name": "sgd", "lr": 0.05}) for i in range(3)]

    def report(number: int, epoch: int, metrics: dict) -> bool:
        if epoch == 2:
            raise TrialStopped
        return number == 0

    bat = train_group(specs, _data(), tmp_path, report)
    assert [o["state"] for o in bat] == ["PRUNED", "FAIL", "FAIL"]
    assert [o["reason"] for o in bat] == ["pruned", "interrupted", "interrupted"]
    assert [o["epochs_run"] for o in bat] == [1, 2, 2]


def test_group_key_splits_configs_by_architecture() -> None:
    def key(**changes: Any) -> tuple | None:
        spec = _spec(0, {"name": "adamw", "lr": 1e-3})
        for section, values in changes.items():
            spec["config"][section] = {**spec["config"][section], **values}
        return group_key(spec["config"])

    base = key()
    assert base is not None
    same = [key(optimizer={"lr": 0.1, "weight_decay": 0.3, "beta1": 0.8}),
            key(model={"dropout": 0.4}), key(schedule={"name": "cosine"}),
            key(training={"label_smoothing": 0.1, "grad_clip": 1.0, "early_stopping": 3})]
    assert all(k == base for k in same)
    different = [key(model={"width": 32}), key(model={"depth": 3}),
                 key(model={"activation": "gelu"}), key(model={"norm": "layer"}),
                 key(model={"residual": True}), key(optimizer={"name": "adam"}),
                 key(training={"batch_size": 64}), key(training={"augment": True})]
    assert all(k is not None and k != base for k in different)
    assert len(set(different)) == len(different)
    assert group_key({**_spec(0, {"name": "adamw", "lr": 1e-3})["config"], "family": "cnn",
                      "model": {}}) is None
    assert key(optimizer={"name": "lamb"}) is None
    assert key(model={"no_such_param": 1}) is None


def test_group_key_leaves_torch_optim_options_to_train_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch.optim-only optimizer, an argument autodl's own update lacks, a
    torch.optim.lr_scheduler schedule, or AUTODL_OPTIM=torch: no group; and a group's
    members are claimed with the leader's schedule choice and torch-only arguments fixed,
    so none of them samples one."""
    from autodl.train.batched._grouping import structural_params

    def key(optimizer: dict, schedule: dict | None = None) -> tuple | None:
        spec = _spec(0, optimizer)
        if schedule is not None:
            spec["config"]["schedule"] = schedule
        return group_key(spec["config"])

    assert key({"name": "adam", "lr": 1e-3}) is not None
    assert key({"name": "radam", "lr": 1e-3, "decoupled_weight_decay": True}) is None
    assert key({"name": "adam", "lr": 1e-3, "amsgrad": True}) is None
    assert key({"name": "sgd", "lr": 1e-3}, {"name": "ReduceLROnPlateau"}) is None
    monkeypatch.setenv("AUTODL_OPTIM", "torch")
    assert key({"name": "adam", "lr": 1e-3}) is None
    params = {"family": "mlp", "mlp.width": 16, "mlp.dropout": 0.1, "optimizer": "adam",
              "optimizer.lr": 1e-3, "optimizer.adam.beta1": 0.9,
              "optimizer.adam.amsgrad": True, "schedule": "cosine",
              "schedule.cosine.min_lr_factor": 0.1}
    assert structural_params(params, "mlp") == {
        "family": "mlp", "mlp.width": 16, "optimizer": "adam",
        "optimizer.adam.amsgrad": True, "schedule": "cosine"}


def test_train_group_rejects_configs_of_different_groups(tmp_path: Path) -> None:
    specs = [_spec(0, {"name": "adamw", "lr": 1e-3}),
             _spec(1, {"name": "adamw", "lr": 1e-3}, model={"width": 8})]
    with pytest.raises(ValueError, match="group_key"):
        train_group(specs, _data(), tmp_path, lambda n, e, m: False)


def test_train_group_memory_guard_fails_the_group(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autodl.workers._memory.free_bytes", lambda device: 1024)
    specs = [_spec(i, {"name": "sgd", "lr": 0.05}) for i in range(2)]
    bat = train_group(specs, _data(), tmp_path, lambda n, e, m: False)
    assert [(o["state"], o["reason"]) for o in bat] == [("FAIL", "oom")] * 2
    assert "2 batched models" in bat[0]["detail"]


def test_train_group_error_fails_members_still_training(tmp_path: Path) -> None:
    specs = [_spec(i, {"name": "sgd", "lr": 0.05}, epochs=3) for i in range(3)]

    def report(number: int, epoch: int, metrics: dict) -> bool:
        if epoch == 2:
            raise RuntimeError("tracking broke")
        return number == 1

    bat = train_group(specs, _data(), tmp_path, report)
    assert [o["state"] for o in bat] == ["FAIL", "PRUNED", "FAIL"]
    assert bat[0]["reason"] == "error" and "tracking broke" in bat[0]["detail"]
    assert "traceback" in bat[2]


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_group_trainer_validates_in_chunks(norm: str) -> None:
    from autodl.train.batched._loop import GroupTrainer, Member

    specs = [_spec(i, {"name": "sgd", "lr": 0.1}, model={"norm": norm}) for i in range(3)]
    trainer = GroupTrainer([Member(s, "accuracy", True) for s in specs], _data())
    trainer._train_epoch()
    for chunked, whole in zip(trainer._validate(batch_size=7), trainer._validate(),
                              strict=True):
        assert chunked == pytest.approx(whole, abs=1e-6)
