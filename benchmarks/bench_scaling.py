"""e. scaling: trials per minute with ``--workers 2`` against ``--workers 1`` on quickstart
trials (digits, quickstart space, random sampler and ``--pruner none`` with one seed, so
both runs train the very same configs for the same epochs; MLflow on, export off).

Throughput is taken over the trial phase (first trial's ``datetime_start`` to the last
one's ``datetime_complete``); whole-run wall time, start-up included, is reported too.

One worker already trains with both cores' threads (intra-op), so a third run, the whole
1-worker search confined to one core (``taskset``), shows how much of the 2-worker gain is
the second core and how much the second worker.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from _suite import Row, describe, med, phase_s, ratio, run_search, search_cmd, trials, workdir

NAME = "scaling"


def _one(workers: int, n: int, epochs: int, one_core: bool = False) -> dict[str, float]:
    with workdir(f"{NAME}-{workers}") as cwd:
        pin = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if one_core else []
        s = run_search(cwd, pin + search_cmd("quickstart", "--trials", str(n), "--epochs",
                                             str(epochs), "--sampler", "random", "--pruner",
                                             "none", "--seed", "0", "--no-export",
                                             "--workers", str(workers)))
        found = [t for t in trials(cwd) if t.datetime_complete]
        phase = phase_s(found)
        return {"trials": len(found), "phase_s": phase, "wall_s": s.wall_s,
                "per_min": 60 * len(found) / phase, "per_min_wall": 60 * len(found) / s.wall_s}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    n, epochs = (8, 6) if quick else (24, 10)
    info = describe(NAME, f"autodl search quickstart, {n} trials x {epochs} epochs, random "
                    "sampler, no pruner, MLflow on, export off; --workers 2 vs 1", [0] * repeats,
                    "trials/min with 2 workers / with 1 (2.0 on 2 idle cores is perfect)")
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    pinned: list[dict[str, float]] = []
    can_pin = shutil.which("taskset") is not None and hasattr(os, "sched_getaffinity")
    for i in range(repeats):
        for workers in (1, 2) if i % 2 == 0 else (2, 1):
            runs[workers].append(_one(workers, n, epochs))
        if can_pin:
            pinned.append(_one(1, n, epochs, one_core=True))
        print(f"  repeat {i}: 1 worker {runs[1][-1]['per_min']:.1f}/min, 2 workers "
              f"{runs[2][-1]['per_min']:.1f}/min"
              + (f", 1 worker on one core {pinned[-1]['per_min']:.1f}/min" if pinned else ""),
              flush=True)
    one, two = (med([r["per_min"] for r in runs[w]]) for w in (1, 2))
    wall1, wall2 = (med([r["per_min_wall"] for r in runs[w]]) for w in (1, 2))
    r = ratio(two, one)
    rows = [Row("trials/min, trial phase: 2 workers | 1", two, one, r, ">= 1.8",
                r is not None and r >= 1.8),
            Row("trials/min, whole wall: 2 workers | 1", wall2, wall1, ratio(wall2, wall1))]
    if pinned:
        core = med([r["per_min"] for r in pinned])
        rows.append(Row("trials/min, trial phase: 2 workers | 1 worker, search on one core",
                        two, core, ratio(two, core)))
    return {**info, "rows": rows, "raw": {**runs, "one_core": pinned}}
