"""The hand-written Optuna + PyTorch loop that ``bench_quality.py`` sets against autodl: what
a careful engineer writes from Optuna's PyTorch example (optuna-examples/pytorch/
pytorch_simple.py) in an afternoon, with a fixed wall budget.

* data: an .npz with X_train, y_train, X_test, y_test; a stratified 80/20 split of the
  training data for validation; z-normalisation with the training part's statistics (per
  channel for series, per feature otherwise; regression targets too).
* model: (n, T, C) series get a 1-D CNN after FCN (Wang et al. 2017: conv blocks of
  128/256/128 channels, kernels 8/5/3, BatchNorm, ReLU, global average pooling), with the
  number of blocks and the channel width sampled; anything else is flattened into an MLP
  with sampled depth, width and dropout.
* search: TPE (seeded), MedianPruner, AdamW with sampled lr / weight decay / batch size, up
  to ``EPOCHS`` epochs with ``trial.report`` / ``should_prune`` each epoch;
  ``study.optimize(timeout=budget)``, and a trial still running at the deadline stops there.
  A trial's value is its best epoch's validation accuracy (RMSE for regression), and the
  best trial's best-epoch weights are evaluated once on the test split.

    python benchmarks/_handloop.py --data X.npz --budget 120 --seed 0 --task classification

prints one JSON line: test metric, best validation value, trial counts, best parameters.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import numpy as np
import optuna
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = 100


def split(X: np.ndarray, y: np.ndarray, seed: int, stratify: bool) -> list[np.ndarray]:
    """Train / validation 80/20, stratified when every class has two samples."""
    try:
        return train_test_split(X, y, test_size=0.2, random_state=seed,
                                stratify=y if stratify else None)
    except ValueError:  # a class with a single sample
        return train_test_split(X, y, test_size=0.2, random_state=seed)


def zscore(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    axes = (0, 1) if train.ndim == 3 else 0  # per channel over time, or per feature
    mean, std = train.mean(axis=axes), train.std(axis=axes)
    std = np.where(std > 0, std, 1.0)
    return [torch.tensor((a - mean) / std, dtype=torch.float32) for a in (train, *others)]


class FCN(nn.Module):
    """Conv blocks of (c, 2c, c) channels, kernels 8/5/3, global average pooling."""

    def __init__(self, channels: int, blocks: int, width: int, out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c, k in list(zip((width, 2 * width, width), (8, 5, 3), strict=True))[:blocks]:
            layers += [nn.Conv1d(channels, c, k, padding="same"), nn.BatchNorm1d(c), nn.ReLU()]
            channels = c
        self.body, self.head = nn.Sequential(*layers), nn.Linear(channels, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, T, C)
        return self.head(self.body(x.transpose(1, 2)).mean(dim=2))


def build(trial: optuna.Trial, x: torch.Tensor, out: int) -> nn.Module:
    if x.ndim == 3:
        return FCN(x.shape[2], trial.suggest_int("blocks", 1, 3),
                   trial.suggest_categorical("width", [32, 64, 128]), out)
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(np.prod(x.shape[1:]))
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    for i in range(trial.suggest_int("layers", 1, 3)):
        units = trial.suggest_int(f"units_l{i}", 16, 512, log=True)
        layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, out))


def search(data: dict[str, np.ndarray], budget: float, seed: int,
           regression: bool) -> dict[str, Any]:
    torch.manual_seed(seed)
    X, Xv, y, yv = split(data["X_train"], data["y_train"], seed, not regression)
    Xt, Xv, Xs = zscore(X, Xv, data["X_test"])
    if regression:
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        yt = torch.tensor((y - mu) / sd, dtype=torch.float32).reshape(len(y), -1)
        out, loss_fn = yt.shape[1], nn.MSELoss()
    else:
        yt = torch.tensor(y, dtype=torch.long)
        out, loss_fn = int(max(y.max(), yv.max(), data["y_test"].max())) + 1, nn.CrossEntropyLoss()

    def score(model: nn.Module, x: torch.Tensor, target: np.ndarray) -> float:
        model.eval()
        with torch.no_grad():
            pred = model(x).numpy()
        if regression:  # RMSE in the target's own units
            err = pred.reshape(target.shape[0], -1) * sd + mu - target.reshape(len(target), -1)
            return float(np.sqrt((err ** 2).mean()))
        return float((pred.argmax(axis=1) == target).mean())

    better = (lambda a, b: a < b) if regression else (lambda a, b: a > b)
    best: dict[str, Any] = {}
    deadline = time.monotonic() + budget

    def objective(trial: optuna.Trial) -> float:
        model = build(trial, Xt, out)
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        batch_size = trial.suggest_categorical("batch_size", [16, 32, 64])
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        loader = DataLoader(TensorDataset(Xt, yt), batch_size=batch_size, shuffle=True,
                            drop_last=len(yt) > batch_size)
        top, state = None, None
        for epoch in range(EPOCHS):
            model.train()
            for xb, yb in loader:
                optimizer.zero_grad()
                loss_fn(model(xb), yb).backward()
                optimizer.step()
            value = score(model, Xv, yv)
            if top is None or better(value, top):
                top, state = value, copy.deepcopy(model.state_dict())
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
            if time.monotonic() > deadline:  # the budget is spent: keep what it has
                break
        if not best or better(top, best["value"]):
            best.update(value=top, state=state, model=model, trial=trial.number,
                        params=trial.params)
        return float(top)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if regression else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5,
                                                                   n_warmup_steps=10))
    study.optimize(objective, timeout=budget)
    searched = budget - (deadline - time.monotonic())
    states = [t.state.name.lower() for t in study.trials]
    result = {"search_s": searched, "trials": {s: states.count(s) for s in set(states)}}
    if not best:
        return result | {"test": None, "val": None}
    best["model"].load_state_dict(best["state"])
    return result | {"test": score(best["model"], Xs, data["y_test"]), "val": best["value"],
                     "best_trial": best["trial"], "params": best["params"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with X_train/y_train/X_test/y_test")
    parser.add_argument("--budget", type=float, required=True, help="search seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=("classification", "regression"),
                        default="classification")
    args = parser.parse_args()
    with np.load(args.data) as npz:
        data = {k: npz[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    metric = "rmse" if args.task == "regression" else "accuracy"
    result = search(data, args.budget, args.seed, args.task == "regression")
    print(json.dumps({"metric": metric, **result}), flush=True)


if __name__ == "__main__":
    main()
