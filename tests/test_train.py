"""The training loop: every optimizer and schedule trains, callbacks end trials as intended."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from autodl.models import create_model
from autodl.train import (
    BestCheckpoint,
    EarlyStopping,
    EpochReporter,
    NonFiniteGuard,
    TensorData,
    Trainer,
    TrialFailed,
    TrialPruned,
)
from autodl.train._specs import OPTIMIZERS, SCHEDULES


def _blobs(task: str = "classification", n: int = 240) -> TensorData:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 4)) + y[:, None] * 1.5).astype(np.float32)
    target = y if task == "classification" else (X.sum(1) * 3 + 10).astype(np.float32)
    cut = n * 3 // 4
    ns = SimpleNamespace(
        modality="tabular", task=task, n_outputs=3 if task == "classification" else 1,
        input_shape=(4,), X_train=X[:cut], y_train=target[:cut], X_val=X[cut:],
        y_val=target[cut:], X_test=None, y_test=None,
        y_mean=None if task == "classification" else float(target[:cut].mean()),
        y_std=None if task == "classification" else float(target[:cut].std()),
    )
    return TensorData.from_prepared(ns, "cpu")


def _config(optimizer: str = "adamw", schedule: str = "constant", **training) -> dict:
    return {"family": "mlp", "model": {"width": 16, "depth": 1, "dropout": 0.0},
            "optimizer": {"name": optimizer, "lr": 1e-2},
            "schedule": {"name": schedule, "warmup_epochs": 1},
            "training": {"batch_size": 32, **training}}


def _trainer(data: TensorData, config: dict, epochs: int = 8, callbacks=(), metric="accuracy",
             maximize=True) -> Trainer:
    torch.manual_seed(0)
    model = create_model("mlp", config["model"], data.input_shape, data.n_outputs, "tabular")
    return Trainer(model, data, config, epochs=epochs, metric=metric, maximize=maximize,
                   callbacks=callbacks)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_trainer_every_optimizer_and_schedule_learns(optimizer: str, schedule: str) -> None:
    fit = _trainer(_blobs(), _config(optimizer, schedule)).fit()
    assert fit.best_value > 0.8  # three well-separated blobs
    assert len(fit.history) == 8
    assert fit.history[-1]["train_loss"] < fit.history[0]["train_loss"]


def test_trainer_regression_reports_rmse_in_original_units() -> None:
    fit = _trainer(_blobs("regression"), _config(), epochs=20, metric="rmse",
                   maximize=False).fit()
    assert fit.best_metrics["val_rmse"] < 3.0  # target std is about 9
    assert fit.best_metrics["val_r2"] > 0.8


def test_trainer_label_smoothing_clipping_augment_run() -> None:
    fit = _trainer(_blobs(), _config(label_smoothing=0.1, grad_clip=1.0, augment=True)).fit()
    assert fit.best_value > 0.8


def test_non_finite_guard_fails_trial_on_nan_loss() -> None:
    config = _config("sgd")
    config["optimizer"]["lr"] = 1e30
    with pytest.raises(TrialFailed) as err:
        _trainer(_blobs(), config, callbacks=[NonFiniteGuard()]).fit()
    assert err.value.reason == "non_finite"


def test_early_stopping_stops_after_patience() -> None:
    config = _config()
    config["optimizer"]["lr"] = 1e-12  # nothing improves after epoch 1
    trainer = _trainer(_blobs(), config, epochs=30, callbacks=[EarlyStopping(3)],
                       metric="loss", maximize=False)
    fit = trainer.fit()
    assert fit.epochs_run < 30 and fit.stop_reason == "early_stopping"


def test_epoch_reporter_prunes_when_told() -> None:
    seen = []

    def report(epoch, metrics):
        seen.append((epoch, metrics["val_accuracy"]))
        return epoch == 2

    with pytest.raises(TrialPruned):
        _trainer(_blobs(), _config(), callbacks=[EpochReporter(report)]).fit()
    assert [e for e, _ in seen] == [1, 2]


def test_best_checkpoint_keeps_best_epoch_weights() -> None:
    data = _blobs()
    trainer = _trainer(data, _config(), epochs=6, callbacks=[BestCheckpoint()])
    fit = trainer.fit()
    trainer.model.load_state_dict(trainer.best_state)
    from autodl.train import evaluate

    again = evaluate(trainer.model, data, data.X_val, data.y_val)
    assert again["accuracy"] == pytest.approx(fit.history[fit.best_epoch - 1]["val_accuracy"])


def test_update_best_one_lucky_epoch_is_not_the_best() -> None:
    """A spike of one epoch (noise on a tiny validation split) loses to a model that holds
    a slightly lower score; the trial's value is the best window's mean."""
    from autodl.train._trainer import SMOOTHING_EPOCHS, fit_loop

    scores = [0.5, 0.95, 0.5, 0.5, 0.85, 0.85, 0.85, 0.6]

    class Scripted:
        metric, maximize, epochs, start_epoch = "accuracy", True, len(scores), 0
        should_stop, stop_reason = False, "epochs"

        def __init__(self) -> None:
            self.callbacks: list[object] = []
            self.history: list[dict[str, float]] = []
            self.best_epoch, self.best_value = 0, float("nan")

        def run_epoch(self) -> dict[str, float]:
            return {"val_accuracy": scores[len(self.history)], "train_loss": 0.1}

    fit = fit_loop(Scripted())
    assert SMOOTHING_EPOCHS == 3
    assert fit.best_epoch == 7  # the window 0.85, 0.85, 0.85; not epoch 2's 0.95
    assert fit.best_value == pytest.approx(0.85)
    assert fit.best_metrics["val_accuracy"] == pytest.approx(0.85)  # epoch 7's own


def test_trainer_objective_inf_fails_the_trial_as_non_finite() -> None:
    """An objective that comes out inf (a regression RMSE overflowing) ends the trial."""
    from autodl.train import NonFiniteGuard, TrialFailed

    class Stub:
        metric = "rmse"

    with pytest.raises(TrialFailed) as info:
        NonFiniteGuard().on_epoch_end(Stub(), 2, {"train_loss": 0.5, "val_rmse": float("inf")})
    assert info.value.reason == "non_finite" and "val_rmse is inf" in info.value.detail


def test_fold_splits_are_stratified_disjoint_and_cover_every_sample() -> None:
    from autodl.train import fold_splits

    data = _blobs(n=60)  # 45 train + 15 validation samples, 3 classes
    everything = torch.cat([data.X_train, data.X_val])
    seen: list[int] = []
    for fold, val_rows in fold_splits(data, 5, seed=3):
        rows = [int(torch.nonzero((everything == x).all(1))[0]) for x in fold.X_val]
        assert rows == val_rows.tolist()  # the rows it names are the ones it validates on
        train_rows = {int(torch.nonzero((everything == x).all(1))[0]) for x in fold.X_train}
        assert not train_rows & set(rows)  # nothing a fold validates on is trained on
        assert len(train_rows) + len(rows) == 60
        assert set(fold.y_val.tolist()) == {0, 1, 2}  # every class in every fold
        seen += rows
    assert sorted(seen) == list(range(60))  # each sample validated exactly once


def test_trainer_small_training_split_is_repeated_to_the_minimum_steps() -> None:
    from autodl.train import MIN_EPOCH_STEPS

    data = _blobs(n=60)  # 45 training samples: 2 batches of 32 a pass
    trainer = _trainer(data, _config())  # batch size 32
    passes = -(-MIN_EPOCH_STEPS * 32 // 45)
    assert trainer.data.epoch_passes == passes
    order = trainer.data.epoch_order(torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == sorted(list(range(45)) * passes)
    steps = []
    trainer.scheduler.step = lambda: steps.append(1)  # count the optimizer steps of an epoch
    trainer.run_epoch()
    assert len(steps) == trainer.data.steps_per_epoch(32) >= MIN_EPOCH_STEPS
    big = _trainer(_blobs(n=2000), _config())  # 1500 samples: one pass is enough
    assert big.data.epoch_passes == 1


def test_fold_trainer_reports_the_folds_mean_and_keeps_the_first_folds_weights() -> None:
    from autodl.train import FoldTrainer, fold_splits

    data, reported = _blobs(n=90), []
    folds = fold_splits(data, 3, seed=0)
    trainers = [_trainer(fold, _config(), epochs=3) for fold, _ in folds]
    cv = FoldTrainer(trainers, [BestCheckpoint(), EpochReporter(
        lambda epoch, metrics: reported.append(metrics["val_accuracy"]) or False)],
        [rows for _, rows in folds])
    fit = cv.fit()
    assert fit.epochs_run == 3 and len(reported) == 3
    for epoch, value in enumerate(reported):
        per_fold = [t.history[epoch]["val_accuracy"] for t in trainers]
        assert value == pytest.approx(sum(per_fold) / 3)
    best = cv.best_state
    assert best is not None and best.keys() == trainers[0].model.state_dict().keys()


def test_fold_trainer_predictions_are_out_of_fold_for_every_sample() -> None:
    from autodl.train import FoldTrainer, fold_splits

    data = _blobs(n=90)
    folds = fold_splits(data, 3, seed=0)
    trainers = [_trainer(fold, _config(), epochs=2) for fold, _ in folds]
    cv = FoldTrainer(trainers, [BestCheckpoint()], [rows for _, rows in folds])
    cv.fit()
    assert cv.best_predictions is not None and cv.best_predictions.shape == (90, 3)
    assert torch.allclose(cv.best_predictions.sum(1), torch.ones(90))  # probabilities
    oof = cv.val_predictions()  # the last epoch's: each row from the fold that held it out
    for trainer, (_, rows) in zip(trainers, folds, strict=True):
        held_out = torch.softmax(trainer.model.eval()(trainer.data.X_val), 1).detach()
        assert torch.allclose(oof[rows], held_out, atol=1e-6)


def test_trainer_batch_norm_statistics_fit_the_final_weights() -> None:
    """A learning rate that moves the weights far every step leaves momentum-averaged
    running statistics behind; the trained model's are those of its final weights over the
    training rows, taken with dropout off (what eval-mode predictions need)."""
    data = _blobs()
    config = {"family": "mlp", "model": {"width": 16, "depth": 1, "dropout": 0.3,
                                         "norm": "batch"},
              "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
              "schedule": {"name": "constant", "warmup_epochs": 0},
              "training": {"batch_size": 16}}
    torch.manual_seed(0)
    model = create_model("mlp", config["model"], data.input_shape, data.n_outputs, "tabular")
    Trainer(model, data, config, epochs=3, metric="accuracy", maximize=True).fit()
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen: list[torch.Tensor] = []
    handle = norm.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    with torch.no_grad():
        model.eval()(data.X_train)
    handle.remove()
    z = seen[0]
    assert torch.allclose(norm.running_mean, z.mean(0), atol=1e-4, rtol=1e-4)
    assert torch.allclose(norm.running_var, z.var(0, unbiased=True), atol=1e-4, rtol=1e-3)
