"""Core benchmarks (issue 2): `autodl --help` start-up, and per-trial training time of
autodl against a minimal hand-written loop over in-memory tensors on the same configs.

    python benchmarks/bench_core.py [--trials 6] [--epochs 15] [--repeats 5]

Prints medians and ratios; writes benchmarks/results/core.json. Timing lives here, never
in tests. Both sides train the same sampled configs for the same epochs with the same
thread count; autodl's time is the trial's duration measured in its worker (model build,
training, validation every epoch, pruning round trips, best-epoch checkpoint).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import save


def help_seconds(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autodl", "--help"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hand_loop_seconds(config: dict, data, epochs: int, seed: int) -> float:
    """What a user writes by hand: tensors in memory, index batches, eval each epoch."""
    import torch
    import torch._dynamo  # torch.optim imports it once per process: outside the timing

    from autodl.models import create_model

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = create_model(config["family"], config["model"], data.input_shape, data.n_outputs,
                         data.modality)
    X, y = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)
    Xv, yv = torch.as_tensor(data.X_val), torch.as_tensor(data.y_val)
    bs = config["training"]["batch_size"]
    opt, sched = _torch_optim(model, config, epochs, -(-len(X) // bs))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config["training"]["label_smoothing"])
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(X)).split(bs):
            if len(idx) < 2:
                continue
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.inference_mode():
            (model(Xv).argmax(1) == yv).float().mean().item()
    return time.perf_counter() - t0


def _torch_optim(model: Any, config: dict, epochs: int, steps: int) -> tuple[Any, Any]:
    """The config's optimizer from ``torch.optim`` and its per-step schedule as a
    ``LambdaLR`` (``OneCycleLR`` for one-cycle), as a hand-written script builds them."""
    import torch

    from autodl.train._optim import build_optimizer, build_schedule

    cfg, sched_cfg = config["optimizer"], config["schedule"]
    lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    params = model.parameters()
    if cfg["name"] == "sgd":
        m = float(cfg.get("momentum", 0.9))
        opt = torch.optim.SGD(params, lr=lr, momentum=m, weight_decay=wd,
                              nesterov=bool(cfg.get("nesterov", False)) and m > 0)
    elif cfg["name"] == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, alpha=float(cfg.get("alpha", 0.99)),
                                  momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd)
    else:
        kind = torch.optim.Adam if cfg["name"] == "adam" else torch.optim.AdamW
        opt = kind(params, lr=lr, weight_decay=wd, eps=float(cfg.get("eps", 1e-8)),
                   betas=(float(cfg.get("beta1", 0.9)), float(cfg.get("beta2", 0.999))))
    if sched_cfg["name"] == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(1, epochs * steps),
            pct_start=float(sched_cfg.get("pct_start", 0.3)))
    factor = build_schedule(build_optimizer([torch.zeros(1)], cfg), sched_cfg, epochs,
                            steps).factor
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def training_comparison(trials: int, epochs: int) -> dict:
    """Run a seeded random search with autodl (tracking and export off), then train each of
    its trials' configs with ``hand_loop_seconds``; per-trial and summed seconds."""
    import optuna
    import torch

    import autodl
    from autodl.data import PreparedData

    work = Path(tempfile.mkdtemp(prefix="autodl-bench-"))
    journal = str(work / "autodl.journal")
    result = autodl.search("quickstart", trials=trials, epochs=epochs, sampler="random",
                           pruner="none", seed=0, study="bench", tracking=False, export=False,
                           storage=journal, out=str(work / "runs" / "bench"))
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal))
    found = optuna.load_study(study_name="bench", storage=storage).trials
    data = PreparedData.load(result.out_dir / "data.npz")
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for t in found:
        config = t.user_attrs["config"]
        hand = hand_loop_seconds(config, data, t.user_attrs["epochs_run"], t.number)
        rows.append({"trial": t.number, "family": config["family"],
                     "epochs": t.user_attrs["epochs_run"],
                     "autodl_s": t.user_attrs["duration_s"], "hand_s": hand})
    auto = sum(r["autodl_s"] for r in rows)
    hand = sum(r["hand_s"] for r in rows)
    return {"trials": rows, "autodl_train_s": auto, "hand_train_s": hand,
            "ratio_autodl_over_hand": auto / hand}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    help_s = help_seconds(args.repeats)
    out = {"help_s": help_s, **training_comparison(args.trials, args.epochs)}
    rows, auto, hand = out["trials"], out["autodl_train_s"], out["hand_train_s"]
    for r in rows:
        print(f"trial {r['trial']:>2} {r['family']:<4} {r['epochs']:>2} epochs  autodl "
              f"{r['autodl_s']:.2f}s  hand {r['hand_s']:.2f}s  ratio "
              f"{r['autodl_s'] / r['hand_s']:.2f}")
    print(f"autodl --help: {help_s:.3f}s (median of {args.repeats})")
    print(f"per-trial training, {len(rows)} trials: autodl {auto:.2f}s vs hand-written "
          f"{hand:.2f}s -> ratio {auto / hand:.3f}")
    save("core", out)


if __name__ == "__main__":
    main()
