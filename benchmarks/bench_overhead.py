"""a. overhead: ``autodl search`` against a hand-written Optuna loop in the shape of Optuna's
own PyTorch example (optuna-examples/pytorch/pytorch_simple.py): DataLoader over a
TensorDataset, TPESampler, MedianPruner, in-memory storage, no tracking.

Both sides sample the same space (spaces/optuna_example.yaml; the hand loop suggests the same
names and distributions in the same order, so a seed gives both the same first configs), with
the same sampler and pruner settings, trials, epochs and seeds, on the same digits splits.

    python benchmarks/bench_overhead.py --hand --trials 6 --epochs 10 --seed 0   # one hand run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from _suite import (
    SPACES,
    Row,
    describe,
    duration_sum,
    epoch_time_sum,
    med,
    phase_s,
    ratio,
    run_search,
    search_cmd,
    trials,
    workdir,
)

NAME = "overhead"


def hand(n_trials: int, epochs: int, seed: int) -> dict[str, Any]:
    """The hand-written loop; returns seconds spent inside the epoch loops and the params."""
    import optuna
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    X, y = load_digits(return_X_y=True)  # autodl's splits: test 20%, then val 20%, stratified
    X, _, y, _ = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    X, Xv, y, yv = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    mean, std = X.mean(), X.std()
    tensors = [torch.tensor((a - mean) / std, dtype=torch.float32) for a in (X, Xv)]
    train = DataLoader(TensorDataset(tensors[0], torch.tensor(y)), batch_size=128, shuffle=True)
    valid = DataLoader(TensorDataset(tensors[1], torch.tensor(yv)), batch_size=128)
    in_loops = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal in_loops
        torch.manual_seed(seed * 1_000_003 + trial.number)  # autodl's per-trial torch seed
        layers: list[nn.Module] = []
        width, n_layers = 64, trial.suggest_int("mlp.depth", 1, 3)
        units = trial.suggest_int("mlp.width", 4, 128)
        dropout = trial.suggest_float("mlp.dropout", 0.2, 0.5)
        for _ in range(n_layers):
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
            width = units
        model = nn.Sequential(*layers, nn.Linear(width, 10), nn.LogSoftmax(dim=1))
        name = trial.suggest_categorical("optimizer", ["adam", "rmsprop", "sgd"])
        lr = trial.suggest_float("optimizer.lr", 1e-5, 1e-1, log=True)
        optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop,
                     "sgd": torch.optim.SGD}[name](model.parameters(), lr=lr)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            for data, target in train:
                optimizer.zero_grad()
                F.nll_loss(model(data), target).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for data, target in valid:
                    correct += (model(data).argmax(dim=1) == target).sum().item()
            accuracy = correct / len(valid.dataset)
            in_loops += time.perf_counter() - t0
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", storage=optuna.storages.InMemoryStorage(),
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),  # autodl's tpe
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4,  # autodl's median
                                           n_warmup_steps=max(1, epochs // 5)))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return {"in_loops_s": in_loops, "phase_s": time.perf_counter() - t0,
            "params": [t.params for t in study.trials],
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials)}


def _autodl(n_trials: int, epochs: int, seed: int) -> dict[str, Any]:
    with workdir(NAME) as cwd:
        s = run_search(cwd, search_cmd(str(SPACES / "optuna_example.yaml"), "--trials",
                                       str(n_trials), "--epochs", str(epochs), "--seed",
                                       str(seed), "--no-export"))
        found = trials(cwd)
        return {"wall_s": s.wall_s, "in_trials_s": duration_sum(found),
                "phase_s": phase_s(found), "in_loops_s": epoch_time_sum(cwd),
                "params": [t.params for t in found],
                "pruned": sum(t.state.name == "PRUNED" for t in found)}


def hand_process(n_trials: int, epochs: int, seed: int) -> dict[str, Any]:
    import subprocess

    cmd = [sys.executable, __file__, "--hand", "--trials", str(n_trials), "--epochs",
           str(epochs), "--seed", str(seed)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {"wall_s": time.perf_counter() - t0, **json.loads(out.splitlines()[-1])}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    n, epochs, seed = (50, 10, 0) if quick else (100, 10, 0)  # full: the example's n_trials
    info = describe(NAME, f"digits, Optuna's pytorch_simple space, {n} trials x {epochs} "
                    "epochs, TPE (5 startup) + median pruner; autodl: journal storage, MLflow "
                    "on, export off; hand: DataLoader, in-memory storage, no tracking",
                    [seed] * repeats, "autodl wall / hand-loop wall (< 1: autodl is faster); "
                    "ms/trial: wall outside training divided by trials")
    auto, hand_runs = [], []
    for i in range(repeats):  # alternate the order: load drifts hit both sides alike
        for side in ("autodl", "hand") if i % 2 == 0 else ("hand", "autodl"):
            if side == "autodl":
                auto.append(_autodl(n, epochs, seed))
            else:
                hand_runs.append(hand_process(n, epochs, seed))
        print(f"  repeat {i}: autodl {auto[-1]['wall_s']:.2f}s, "
              f"hand {hand_runs[-1]['wall_s']:.2f}s", flush=True)
    same = sum(a == b for a, b in zip(auto[0]["params"], hand_runs[0]["params"], strict=False))
    print(f"  identical configs (first trials): {same} of {n}", flush=True)
    return {**info, "rows": _rows(auto, hand_runs, n),
            "raw": {"autodl": auto, "hand": hand_runs, "identical_configs": same}}


def _rows(auto: list[dict], hand_runs: list[dict], n: int) -> list[Row]:
    def m(runs: list[dict], f: Any) -> float | None:
        return med([f(r) for r in runs])

    wa, wh = m(auto, lambda r: r["wall_s"]), m(hand_runs, lambda r: r["wall_s"])
    nt_a = m(auto, lambda r: (r["wall_s"] - r["in_trials_s"]) * 1000 / n)
    nt_h = m(hand_runs, lambda r: (r["wall_s"] - r["in_loops_s"]) * 1000 / n)
    steady_a, steady_h = (m(x, lambda r: (r["phase_s"] - r["in_loops_s"]) * 1000 / n)
                          for x in (auto, hand_runs))
    fixed_a, fixed_h = (m(x, lambda r: r["wall_s"] - r["phase_s"]) for x in (auto, hand_runs))
    la, lh = m(auto, lambda r: r["in_loops_s"]), m(hand_runs, lambda r: r["in_loops_s"])
    r = ratio(wa, wh)
    # The per-trial overhead is the time between and around epoch loops while trials run;
    # what is paid once per search (start-up, the report) is the "fixed" row and, amortised
    # over this search's trials, the "whole wall" one.
    return [
        Row("wall s: autodl | hand loop", wa, wh, r, "<= 1.0", r is not None and r <= 1.0),
        Row("ms/trial not training, while trials run (first start to last end, minus "
            "epoch loops)", steady_a, steady_h, ratio(steady_a, steady_h), "< 50 autodl",
            steady_a is not None and steady_a < 50),
        Row("s fixed: before the first trial + after the last", fixed_a, fixed_h,
            ratio(fixed_a, fixed_h)),
        Row("ms/trial not training, whole wall (fixed included): autodl (wall - sum "
            "duration_s) | hand (wall - epoch loops)", nt_a, nt_h, ratio(nt_a, nt_h)),
        Row("s inside epoch loops (train + validate)", la, lh, ratio(la, lh)),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hand", action="store_true", help="run the hand-written loop once")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.hand:
        print(json.dumps(hand(args.trials, args.epochs, args.seed)))
    else:
        print(run(quick=True, repeats=1)["rows"])
