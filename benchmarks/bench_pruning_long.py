"""j. pruning where it matters: long trials on a real series set (issue 18 item 4).

ACSF1 (UCR; 100 training series of 1,460 steps, 10 classes, from ``../shared/data``) with
the shipped ``sequence`` space and autodl's defaults (5-fold cross-validation, the step
budget per trial, refit, ensembles; export off), the default pruner (hyperband) against
``--pruner none``, the same ``--trials`` and seed on both. Reported over the whole budget:
the trial phase's seconds (first trial start to last trial end), the best validation value
and the final model's test accuracy, median over seeds; and best-so-far validation against
seconds since launch as a figure (``benchmarks/results/pruning_long.png``, matplotlib:
``pip install 'autodl[bench]'``).

    python benchmarks/bench_pruning_long.py [--trials 12] [--seeds 0,1,2] [--set ACSF1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from _results import save
from _suite import Row, med, ratio, run_search, search_cmd, trials, workdir
from bench_quality import dev_data

NAME = "pruning_long"
HERE = Path(__file__).resolve().parent
PRUNERS = ("hyperband", "none")


def _search(data: Path, pruner: str, seed: int, n: int, cap_s: float) -> dict[str, Any]:
    with workdir(f"{NAME}-{pruner}") as cwd:
        s = run_search(cwd, search_cmd("sequence", "--data", str(data), "--trials", str(n),
                                       "--seed", str(seed), "--pruner", pruner,
                                       "--no-export", "--timeout", str(cap_s)))
        found = trials(cwd)
        summary = s.summary
    started = [t.datetime_start.timestamp() for t in found if t.datetime_start]
    done = sorted((t.datetime_complete.timestamp() - s.launched, t.value) for t in found
                  if t.state.name == "COMPLETE" and t.value is not None)
    best, curve = None, []
    for at, value in done:  # best-so-far validation value against seconds since launch
        best = value if best is None else max(best, value)
        curve.append((at, best))
    ended = [t.datetime_complete.timestamp() for t in found if t.datetime_complete]
    return {"pruner": pruner, "seed": seed, "wall_s": s.wall_s,
            "trial_phase_s": max(ended) - min(started) if started and ended else None,
            "best_val": (summary.get("best") or {}).get("value"),
            "test_accuracy": (summary.get("test") or {}).get("accuracy"),
            "trials": summary.get("trials"), "curve": curve, "returncode": s.returncode}


def _figure(runs: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no matplotlib: no figure; pip install 'autodl[bench]')", flush=True)
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"hyperband": "tab:blue", "none": "tab:orange"}
    for r in runs:
        if r["curve"]:
            xs, ys = zip(*r["curve"], strict=True)
            ax.step(xs, ys, where="post", color=colors[r["pruner"]], alpha=0.8,
                    label=f"{r['pruner']} (seed {r['seed']})")
    ax.set_xlabel("seconds since launch")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("ACSF1, sequence space: hyperband pruning against none")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def measure(name: str, n: int, seeds: list[int], cap_s: float) -> dict[str, Any]:
    data = dev_data() / f"{name}.npz"
    if not data.is_file():
        sys.exit(f"bench_pruning_long: no {data} (AUTODL_DEV_DATA: the folder with it)")
    runs = []
    for seed in seeds:
        for pruner in PRUNERS:
            runs.append(_search(data, pruner, seed, n, cap_s))
            r = runs[-1]
            print(f"  seed {seed} {pruner}: trial phase {r['trial_phase_s']:.0f}s, best val "
                  f"{r['best_val']}, test {r['test_accuracy']}, trials {r['trials']}, wall "
                  f"{r['wall_s']:.0f}s", flush=True)

    def m(pruner: str, key: str) -> float | None:
        return med([r[key] for r in runs if r["pruner"] == pruner])

    phase = (m("none", "trial_phase_s"), m("hyperband", "trial_phase_s"))
    test = (m("hyperband", "test_accuracy"), m("none", "test_accuracy"))
    r = ratio(*phase)
    rows = [Row(f"s of trial phase, {n} trials: none | hyperband", *phase, r, ">= 3",
                r is not None and r >= 3),
            Row("best val accuracy: hyperband | none", m("hyperband", "best_val"),
                m("none", "best_val"), ratio(m("hyperband", "best_val"), m("none", "best_val"))),
            Row("test accuracy: hyperband | none", *test,
                None if None in test else test[0] - test[1], ">= -0.01 (difference)",
                None if None in test else test[0] - test[1] >= -0.01)]
    figure = _figure(runs, HERE / "results" / f"{NAME}.png")
    for row in rows:
        print(f"{row.measure:<55} {row.a} {row.b} ratio/diff {row.ratio} {row.target} "
              f"{row.met}", flush=True)
    path = save(NAME, {"set": name, "trials": n, "seeds": seeds, "cap_s": cap_s,
                       "rows": [row.__dict__ for row in rows], "runs": runs,
                       "figure": str(figure) if figure else None})
    print(f"written: {path}" + (f", {figure}" if figure else ""), flush=True)
    return {"rows": rows, "runs": runs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="ACSF1")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cap", type=float, default=1800.0, help="--timeout of each search")
    args = parser.parse_args()
    measure(args.set, args.trials, [int(s) for s in args.seeds.split(",")], args.cap)
