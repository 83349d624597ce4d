"""Tracking cost (issue 3): wall time of the same seeded quickstart search with MLflow
tracking on (SQLite store) vs off, alternating runs.

    python benchmarks/bench_tracking.py [--trials 8] [--epochs 10] [--repeats 3]

Prints medians and the ratio on/off; writes benchmarks/results/tracking.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from _results import save


def one(tracking: bool, trials: int, epochs: int, tag: str) -> float:
    import autodl

    os.chdir(tempfile.mkdtemp(prefix=f"autodl-track-{tag}-"))
    t0 = time.perf_counter()
    autodl.search("quickstart", trials=trials, epochs=epochs, sampler="random",
                  pruner="none", seed=0, study="bench", tracking=tracking, export=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    on, off = [], []
    for i in range(args.repeats):
        off.append(one(False, args.trials, args.epochs, f"off{i}"))
        on.append(one(True, args.trials, args.epochs, f"on{i}"))
        print(f"repeat {i}: tracking off {off[-1]:.2f}s, on {on[-1]:.2f}s", flush=True)
    result = {"off_s": off, "on_s": on, "median_off_s": statistics.median(off),
              "median_on_s": statistics.median(on)}
    result["ratio_on_over_off"] = result["median_on_s"] / result["median_off_s"]
    print(f"quickstart, {args.trials} trials x {args.epochs} epochs: tracking off "
          f"{result['median_off_s']:.2f}s, on {result['median_on_s']:.2f}s (medians of "
          f"{args.repeats}) -> ratio {result['ratio_on_over_off']:.3f}")
    save("tracking", result)


if __name__ == "__main__":
    main()
