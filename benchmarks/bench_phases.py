"""i. phases: where the wall time of a short search goes (issue 18's side-by-side table).

20 trials x 20 epochs on digits, Optuna's pytorch_simple space (spaces/optuna_example.yaml),
against the hand-written loop of ``bench_overhead`` (DataLoader, TPE, median pruner, no
tracking, no export). Each autodl search is split, from its Optuna journal, into start-up
(launch to the first trial's start), the trial phase (first start to last end) and the end
phase (last end to exit: choosing, refitting, testing, exporting, the report).

Two protocols: autodl's defaults (on digits' 1,347 training samples: 5-fold cross-validation,
a refit on all of them, ensemble selection) and the hand loop's own (``--holdout --no-refit
--ensemble 0``: one validation split, the search's weights handed over), each with and
without tracking and export, so the fixed costs show apart from the extra training.

    python benchmarks/bench_phases.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _suite import (
    SPACES,
    Row,
    describe,
    med,
    phase_s,
    ratio,
    run_search,
    search_cmd,
    trials,
    workdir,
)
from bench_overhead import hand_process

NAME = "phases"
TRIALS, EPOCHS, SEED = 20, 20, 0
HOLDOUT = ("--holdout", "--no-refit", "--ensemble", "0")
VARIANTS = {  # label -> extra flags
    "defaults (cv, refit, ensemble; tracking, export)": (),
    "hand loop's protocol (holdout, no refit, no ensemble)": HOLDOUT,
    "  same, --no-export": (*HOLDOUT, "--no-export"),
    "  same, --no-tracking": (*HOLDOUT, "--no-tracking"),
    "  same, --no-export --no-tracking": (*HOLDOUT, "--no-export", "--no-tracking"),
}


def _search(flags: tuple[str, ...]) -> dict[str, Any]:
    with workdir(NAME) as cwd:
        s = run_search(cwd, search_cmd(str(SPACES / "optuna_example.yaml"), "--trials",
                                       str(TRIALS), "--epochs", str(EPOCHS), "--seed",
                                       str(SEED), *flags))
        found = trials(cwd)
        started = [t.datetime_start.timestamp() for t in found if t.datetime_start]
        startup = min(started) - s.launched if started else None
        trial_phase = phase_s(found)
        end = s.wall_s - (startup or 0.0) - trial_phase
        return {"wall_s": s.wall_s, "startup_s": startup, "trials_s": trial_phase,
                "end_s": end, "returncode": s.returncode,
                "protocol": s.summary.get("protocol"), "ensemble":
                bool((s.summary.get("ensemble") or {}).get("chosen"))}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    info = describe(NAME, f"digits, Optuna's pytorch_simple space, {TRIALS} trials x {EPOCHS} "
                    "epochs, seed 0; autodl split into start-up | trial phase | end phase, "
                    "defaults and the hand loop's protocol, with and without tracking and "
                    "export", [SEED] * repeats,
                    "autodl wall / hand-loop wall (< 1: autodl is faster); phases in seconds")
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in VARIANTS}
    hand_runs: list[dict[str, Any]] = []
    for i in range(repeats):
        hand_runs.append(hand_process(TRIALS, EPOCHS, SEED))
        for label, flags in VARIANTS.items():
            runs[label].append(_search(flags))
        print(f"  repeat {i}: hand {hand_runs[-1]['wall_s']:.2f}s, " + ", ".join(
            f"{r[-1]['wall_s']:.2f}s" for r in runs.values()), flush=True)
    hand_wall = med([r["wall_s"] for r in hand_runs])
    rows = [Row("wall s: hand-written Optuna loop", hand_wall)]
    for label, found in runs.items():
        wall, end = med([r["wall_s"] for r in found]), med([r["end_s"] for r in found])
        full = not {"--no-export", "--no-tracking"} & set(VARIANTS[label])  # targets: both on
        r = ratio(wall, hand_wall)
        rows.append(Row(f"wall s: {label.strip()} | hand loop", wall, hand_wall, r,
                        "<= 0.6" if full else "", (r is not None and r <= 0.6) if full else None))
        rows.append(Row(f"  end phase s (start-up | trials | end: {_fmt3(found)})", end,
                        target="<= 2" if full else "",
                        met=(end is not None and end <= 2.0) if full else None))
    return {**info, "rows": rows, "raw": {"autodl": runs, "hand": hand_runs}}


def _fmt3(found: list[dict[str, Any]]) -> str:
    parts = [med([x[k] for x in found if x[k] is not None]) for k in
             ("startup_s", "trials_s", "end_s")]
    return " | ".join("-" if p is None else f"{p:.2f}" for p in parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(quick=False, repeats=args.repeats)
    for row in result["rows"]:
        a, b = row.a, row.b
        print(f"{row.measure:<100} {'' if a is None else f'{a:7.2f}'}"
              f"{'' if b is None else f'{b:8.2f}'}"
              f"{'' if row.ratio is None else f'{row.ratio:7.2f}'} {row.target}", flush=True)
    sys.exit(0)
