"""Ray backend overhead: the same seeded trials (the tests' tiny space on digits) with
``--backend optuna`` and ``--backend ray``, one trial at a time, no tracking, no export.

    python benchmarks/bench_ray.py [--trials 30] [--epochs 3]    # as root

Per-trial overhead = wall time of the whole search process / trials - mean training time
per trial (run_trial's ``duration_s``: model build, epochs, saving the weights). It is
split into a fixed part (process start to the first trial's start, plus the last trial's
end to process exit: imports, Ray's start, the test-split evaluation, shutdown) and the
part inside the trial loop (first start to last end, minus training: scheduling, reports,
recording). Both searches run inside a network namespace this script creates (loopback
only), so the local Ray stays on 127.0.0.1. Prints both backends and the ratios; writes
benchmarks/results/ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _results import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TINY_SPACE  # noqa: E402
from tests.netns import Namespace, create_namespace, delete_namespace, skip_reason  # noqa: E402


def child(backend: str, trials: int, epochs: int) -> None:
    """Inside the namespace: one search with a listener that timestamps trial starts and
    ends; prints them as JSON."""
    from autodl.events import SearchListener
    from autodl.runner import run_search
    from autodl.settings import SearchSettings

    stamps: dict[str, list[float]] = {"start": [], "end": [], "training": []}

    class Stamps(SearchListener):
        def trial_start(self, number: int, config: object, worker: object) -> None:
            stamps["start"].append(time.time())

        def trial_end(self, end: object) -> None:
            stamps["end"].append(time.time())
            stamps["training"].append(end.duration_s)  # type: ignore[attr-defined]

    settings = SearchSettings(space="tiny.yaml", data="digits", backend=backend, trials=trials,
                              epochs=epochs, workers=1, seed=0, study="bench", tracking=False,
                              export=False, quiet=True)
    run_search(settings, [Stamps()])
    print(json.dumps(stamps))


def one(ns: Namespace, backend: str, trials: int, epochs: int) -> dict[str, float]:
    cwd = Path(tempfile.mkdtemp(prefix=f"autodl-bench-{backend}-"))
    (cwd / "tiny.yaml").write_text(TINY_SPACE)
    ray_tmp = tempfile.mkdtemp(dir="/tmp", prefix="ray")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_DISABLE_USAGE_STATS": "1",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", backend,
            "--trials", str(trials), "--epochs", str(epochs)]
    t0 = time.time()
    proc = ns.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    t1 = time.time()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    shutil.rmtree(cwd, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{backend} search failed:\n{proc.stderr[-3000:]}")
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    n, training = len(s["end"]), sum(s["training"])
    loop = max(s["end"]) - min(s["start"])
    return {"trials": n, "wall_s": t1 - t0, "training_s": training,
            "fixed_s": (min(s["start"]) - t0) + (t1 - max(s["end"])),
            "wall_per_trial_s": (t1 - t0) / n, "training_per_trial_s": training / n,
            "overhead_per_trial_s": (t1 - t0 - training) / n,
            "loop_overhead_per_trial_s": (loop - training) / n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", choices=["optuna", "ray"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trials, args.epochs)
        return
    reason = skip_reason()
    if reason:
        raise SystemExit(f"bench_ray needs a network namespace: {reason}")
    ns = create_namespace("autodl-bench")
    try:
        result: dict = {b: one(ns, b, args.trials, args.epochs) for b in ("optuna", "ray")}
    finally:
        delete_namespace(ns)
    for backend, r in result.items():
        print(f"{backend:>6}: {r['trials']} trials in {r['wall_s']:.1f}s; per trial: wall "
              f"{r['wall_per_trial_s']:.3f}s, training {r['training_per_trial_s']:.3f}s, "
              f"overhead {r['overhead_per_trial_s']:.3f}s (fixed {r['fixed_s']:.1f}s in "
              f"all, in the loop {r['loop_overhead_per_trial_s']:.3f}s per trial)")
    for key in ("overhead_per_trial_s", "loop_overhead_per_trial_s"):
        ratio = result["ray"][key] / result["optuna"][key]
        result[f"ratio_{key}"] = ratio
        print(f"ray / optuna {key.removesuffix('_s').replace('_', ' ')}: {ratio:.2f}")
    save("ray", result)


if __name__ == "__main__":
    main()
