"""g. per-trial training and ``--help`` (from bench_core.py): each trial of a seeded random
quickstart search timed in its autodl worker, against a minimal hand-written loop over
in-memory tensors training the same config for the same epochs (same optimizer, schedule
and thread count); and the wall time of ``autodl --help``."""

from __future__ import annotations

from typing import Any

from _suite import Row, describe, med, ratio
from bench_core import help_seconds, training_comparison

NAME = "training"


def run(quick: bool, repeats: int) -> dict[str, Any]:
    n, epochs = (3, 3) if quick else (6, 15)
    info = describe(NAME, f"autodl search quickstart, {n} trials x {epochs} epochs, random "
                    "sampler, no pruner, tracking and export off, then each config again in "
                    "a hand-written loop; autodl --help", [0] * repeats,
                    "summed per-trial training seconds, autodl / hand loop (1.0: no overhead "
                    "inside the trial)")
    helps, runs = [], []
    for i in range(repeats):
        helps.append(help_seconds(5))
        runs.append(training_comparison(n, epochs))
        print(f"  repeat {i}: --help {helps[-1]:.3f}s, training autodl "
              f"{runs[-1]['autodl_train_s']:.2f}s, hand {runs[-1]['hand_train_s']:.2f}s",
              flush=True)
    auto, hand = (med([r[k] for r in runs]) for k in ("autodl_train_s", "hand_train_s"))
    rows = [Row("s training, summed over trials: autodl | hand loop", auto, hand,
                ratio(auto, hand)),
            Row("s autodl --help (median of 5 per repeat)", med(helps))]
    return {**info, "rows": rows, "raw": {"help_s": helps, "runs": runs}}
