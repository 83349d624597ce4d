"""MLflow writing cost per trial, in the tracking process's own terms: ``MlflowStore``
(what ``autodl search``'s tracking process runs) driven directly, no search around it.

    python benchmarks/bench_store.py [--trials 50] [--epochs 10] [--metrics 7]

Prints the seconds to create and set up a new SQLite store (MLflow import included) and
the milliseconds of MLflow calls per trial (start, per-epoch metrics, end).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from autodl.events import StudyInfo, TrialEnd
from autodl.tracking._store import MlflowStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=7, help="per epoch (autodl logs 7)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="autodl-store-")
    os.chdir(work)
    t0 = time.perf_counter()
    store = MlflowStore(f"sqlite:///{work}/mlflow.db", None, False, "bench:1")
    store.setup(StudyInfo("bench", "space", "space.yaml", "name: space\n", {"name": "digits"},
                          [("accuracy", "maximize")], ["mlp"], args.trials, 0, args.epochs,
                          work, {"trials": args.trials}), int(time.time() * 1000))
    setup_s = time.perf_counter() - t0
    config = {"family": "mlp", "model": {"depth": 2, "width": 64, "dropout": 0.3},
              "optimizer": {"name": "adam", "lr": 0.01}, "training": {"batch_size": 128}}
    metrics = {f"metric_{i}": 0.5 for i in range(args.metrics)}
    t0 = time.perf_counter()
    for n in range(args.trials):
        now = int(time.time() * 1000)
        store.start_trial(n, config, {"device": "cpu"}, now)
        for epoch in range(1, args.epochs + 1):
            store.buffer(n, epoch, metrics, now)
        store.end_trial(TrialEnd(n, "COMPLETE", [0.9], None, "", args.epochs, args.epochs, {},
                                 1000, 0.5), now)
    per_trial_ms = (time.perf_counter() - t0) / args.trials * 1000
    print(f"new store + setup {setup_s:.2f}s; {per_trial_ms:.1f} ms of MLflow calls per trial "
          f"({args.trials} trials x {args.epochs} epochs x {args.metrics} metrics)")


if __name__ == "__main__":
    main()
