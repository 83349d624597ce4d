"""f. search quality: the best TEST accuracy reached within fixed wall budgets, the space's
default sampler + pruner (TPE + hyperband) against random search without pruning, on digits
(quickstart) and synthetic sequences (sequence), several seeds. The sequences have 8
classes (``synthetic:sequence?classes=8``): with the default 3, every family scores 1.0.

One search per (data, variant, seed) runs until the largest budget after launch, then gets
SIGTERM (``--timeout`` alone would let the last trial run on). For each budget, the trial
with the best validation accuracy among those completed by then is evaluated once on the
test split from its saved weights (what autodl does for the best trial), so the test split
never takes part in the choice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from _suite import Row, describe, med, ratio, search_cmd, trials, workdir

NAME = "quality"
CASES = (("digits", "quickstart"), ("synthetic:sequence?classes=8", "sequence"))
VARIANTS = {"tpe+hyperband": [], "random+none": ["--sampler", "random", "--pruner", "none"]}


def _test_accuracy(out: Path, trial: Any) -> float:
    from autodl.data import PreparedData
    from autodl.train import TensorData
    from autodl.workers._worker import _test_metrics

    data = TensorData.from_prepared(PreparedData.load(out / "data.npz"), "cpu")
    return _test_metrics(data, out, trial.number, trial.user_attrs["config"])["accuracy"]


def _search(data: str, space: str, budgets: tuple[float, ...], seed: int,
            flags: list[str]) -> dict[str, Any]:
    # enough trials to fill the budget; not more: autodl enqueues the whole --trials budget
    # as WAITING trials before the first one starts (1000 take seconds, 100000 hours)
    n = 100 if max(budgets) <= 30 else 400
    with workdir(NAME) as cwd:
        cmd = search_cmd(space, "--data", data, "--trials", str(n), "--seed", str(seed),
                         "--no-export", *flags)
        launched = time.time()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(max(budgets))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        done = [t for t in trials(cwd) if t.state.name == "COMPLETE"]
        out: dict[str, Any] = {"completed": len(done)}
        for budget in budgets:
            kept = [t for t in done if t.datetime_complete.timestamp() - launched <= budget]
            best = max(kept, key=lambda t: t.value, default=None)
            out[f"{budget:.0f}s"] = None if best is None else {
                "trial": best.number, "val_accuracy": best.value, "completed": len(kept),
                "test_accuracy": _test_accuracy(cwd / "out", best)}
        return out


def run(quick: bool, repeats: int) -> dict[str, Any]:
    budgets = (30.0,) if quick else (30.0, 120.0)  # 15s: no trial done yet
    seeds = list(range(repeats))
    info = describe(NAME, "autodl search quickstart (digits) and sequence (synthetic:sequence"
                    "?classes=8), "
                    f"space defaults (20 epochs), MLflow on, export off; budgets "
                    f"{', '.join(f'{b:.0f}' for b in budgets)}s of wall time from launch",
                    seeds, "median best test accuracy, TPE + hyperband / random without "
                    "pruning (> 1: the default finds better models in the budget)")
    raw: dict[str, list[dict[str, Any]]] = {f"{d}/{v}": [] for d, _ in CASES for v in VARIANTS}
    for data, space in CASES:
        for seed in seeds:  # the variants alternate, so load drifts hit both alike
            for variant, flags in VARIANTS.items():
                r = _search(data, space, budgets, seed, flags)
                raw[f"{data}/{variant}"].append(r)
                got = {b: (r[f"{b:.0f}s"] or {}).get("test_accuracy") for b in budgets}
                print(f"  {data} {variant} seed {seed}: {r['completed']} trials completed; "
                      f"best trial's test accuracy by budget {got}", flush=True)
    rows = []
    for data, _ in CASES:
        for budget in budgets:
            a, b = (med([(r[f"{budget:.0f}s"] or {}).get("test_accuracy")
                         for r in raw[f"{data}/{v}"]]) for v in VARIANTS)
            rows.append(Row(f"test acc, {data} @{budget:.0f}s: tpe+hyperband | random", a, b,
                            ratio(a, b)))
    return {**info, "rows": rows, "raw": raw}
