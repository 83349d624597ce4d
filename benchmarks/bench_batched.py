"""Batched trials (issue 6, item 2): K small MLP trials of one architecture on digits,
trained one after the other with ``run_trial`` vs together with ``train_group``.

    python benchmarks/bench_batched.py [--trials 16] [--epochs 5] [--repeats 5] [--threads 1]

The K configs share the architecture (``--width``, ``--depth``, ``--optimizer``,
``--batch-size``) and differ in lr, weight decay, optimizer extras, dropout and label
smoothing, as a sampler would draw them. Repeats alternate sequential and batched so that
load from other processes hits both alike; prints medians, trials per second and the ratio,
the largest metric difference between the two (exact up to rounding only with
``--dropout 0``), and writes benchmarks/results/batched.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import save


def make_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    from autodl.space._space import with_defaults

    rng = random.Random(args.seed)
    specs = []
    for i in range(args.trials):
        opt: dict[str, Any] = {"name": args.optimizer, "lr": 10 ** rng.uniform(-3.5, -2),
                               "weight_decay": rng.choice([0.0, 1e-4, 1e-3, 1e-2])}
        if args.optimizer == "sgd":
            opt.update(lr=10 ** rng.uniform(-2.5, -1), momentum=rng.uniform(0.5, 0.95),
                       nesterov=rng.random() < 0.5)
        elif args.optimizer in ("adam", "adamw"):
            opt.update(beta1=rng.uniform(0.8, 0.95))
        elif args.optimizer == "rmsprop":
            opt.update(momentum=rng.uniform(0.0, 0.9), alpha=rng.uniform(0.9, 0.99))
        config = with_defaults({
            "family": "mlp",
            "model": {"width": args.width, "depth": args.depth,
                      "dropout": rng.uniform(0.0, args.dropout)},
            "optimizer": opt,
            "schedule": {"name": rng.choice(["constant", "cosine"])},
            "training": {"batch_size": args.batch_size,
                         "label_smoothing": rng.choice([0.0, 0.1])},
        })
        specs.append({"number": i, "config": config, "epochs": args.epochs,
                      "objectives": [("accuracy", "maximize")], "seed": args.seed + i})
    return specs


def run_sequential(specs: list[dict], data: Any, out_dir: Path
                   ) -> tuple[float, float, list[dict]]:
    """Wall and CPU seconds of ``run_trial`` on every spec, one after the other."""
    from autodl.workers._trial import run_trial

    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = [run_trial(s, data, out_dir, lambda epoch, metrics: False) for s in specs]
    return time.perf_counter() - t0, time.process_time() - c0, outcomes


def run_batched(specs: list[dict], data: Any, out_dir: Path
                ) -> tuple[float, float, list[dict]]:
    """Wall and CPU seconds of one ``train_group`` over all specs."""
    from autodl.workers._group import train_group

    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = train_group(specs, data, out_dir, lambda number, epoch, metrics: False)
    return time.perf_counter() - t0, time.process_time() - c0, outcomes


def max_difference(a: list[dict], b: list[dict]) -> dict[str, float]:
    diff: dict[str, float] = {}
    for x, y in zip(a, b, strict=True):
        for key in ("val_loss", "val_accuracy", "train_loss"):
            d = abs(x["metrics"][key] - y["metrics"][key])
            diff[key] = max(diff.get(key, 0.0), d)
    return diff


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="adamw", choices=["sgd", "adam", "adamw", "rmsprop"])
    p.add_argument("--dropout", type=float, default=0.2, help="dropout drawn from [0, this]")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    from autodl.data import load_data
    from autodl.train import TensorData

    torch.set_num_threads(args.threads)
    data = TensorData.from_prepared(load_data("digits"), "cpu")
    specs = make_specs(args)
    work = Path(tempfile.mkdtemp(prefix="autodl-bench-batched-"))
    run_batched(specs[:2], data, work / "warmup")  # imports, first-call allocations
    times: dict[str, list[float]] = {"seq": [], "bat": [], "seq_cpu": [], "bat_cpu": []}
    for r in range(args.repeats):
        t_seq, c_seq, seq = run_sequential(specs, data, work / f"seq{r}")
        t_bat, c_bat, bat = run_batched(specs, data, work / f"bat{r}")
        for key, value in (("seq", t_seq), ("bat", t_bat), ("seq_cpu", c_seq),
                           ("bat_cpu", c_bat)):
            times[key].append(value)
        print(f"repeat {r + 1}: sequential {t_seq:.2f}s  batched {t_bat:.2f}s  "
              f"ratio {t_seq / t_bat:.2f} (CPU time ratio {c_seq / c_bat:.2f})", flush=True)
    report(args, times, max_difference(seq, bat), seq, bat)


def report(args: argparse.Namespace, times: dict[str, list[float]],
           diff: dict[str, float], seq: list[dict], bat: list[dict]) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    seq_med, bat_med = med["seq"], med["bat"]
    out = {
        "settings": vars(args),
        "sequential_s": times["seq"], "batched_s": times["bat"],
        "sequential_cpu_s": times["seq_cpu"], "batched_cpu_s": times["bat_cpu"],
        "sequential_median_s": seq_med, "batched_median_s": bat_med,
        "sequential_trials_per_s": args.trials / seq_med,
        "batched_trials_per_s": args.trials / bat_med,
        "ratio": seq_med / bat_med,
        "cpu_time_ratio": med["seq_cpu"] / med["bat_cpu"],
        "max_metric_difference": diff,
        "mean_val_accuracy": {
            "sequential": statistics.mean(o["metrics"]["val_accuracy"] for o in seq),
            "batched": statistics.mean(o["metrics"]["val_accuracy"] for o in bat)},
    }
    print(f"{args.trials} trials x {args.epochs} epochs, mlp {args.depth}x{args.width}, "
          f"{args.optimizer}, batch {args.batch_size}, {args.threads} thread(s), "
          f"medians of {args.repeats}:")
    print(f"  sequential {seq_med:.2f}s = {out['sequential_trials_per_s']:.2f} trials/s")
    print(f"  batched    {bat_med:.2f}s = {out['batched_trials_per_s']:.2f} trials/s")
    print(f"  ratio {out['ratio']:.2f}x (CPU time {out['cpu_time_ratio']:.2f}x)")
    print(f"  max |difference| {diff}; mean val accuracy "
          f"{out['mean_val_accuracy']}")
    save("batched", out)


if __name__ == "__main__":
    main()
