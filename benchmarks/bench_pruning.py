"""d. pruning: wall time until a trial reaches a target validation accuracy on digits with
the default pruner (hyperband) against ``--pruner none``; TPE and the same seed on both.

Workload: Optuna's pytorch_simple space (spaces/optuna_example.yaml: MLP depth 1-3, width
4-128, dropout, adam/rmsprop/sgd with lr 1e-5..1e-1) for 30 epochs. Like most real search
spaces, much of it trains badly (a third of its trials end below 0.5 val accuracy), which
is what pruning is for; the targets are reached by a few percent of its configs.

The same pairs run again with ``--batch-trials 1`` (one trial per worker at a time, as on
GPUs, where batching is off by default): there a pruned trial frees its worker at once,
while in a batched group the survivors keep the group's time.

Time to target = ``datetime_complete`` of the first trial whose value reaches the target,
minus the launch of ``autodl search``; a target not reached counts as the whole wall time
(``reached: false``, a lower bound). Each search runs its whole budget, so the same runs
also show what pruning does over a search: the trial phase's seconds (first trial start to
last trial end) and the best validation accuracy at the end.
"""

from __future__ import annotations

from typing import Any

from _suite import SPACES, Row, describe, med, ratio, run_search, search_cmd, trials, workdir

NAME = "pruning"
TARGETS = (0.955, 0.96)
EPOCHS = 30


def _reached(found: list[Any], target: float) -> float | None:
    """Seconds since the epoch when the first trial reaching ``target`` completed, or None."""
    done = [t.datetime_complete.timestamp() for t in found
            if t.state.name == "COMPLETE" and t.value is not None and t.value >= target]
    return min(done) if done else None


def _search(pruner: str, seed: int, n: int, cap_s: float, alone: bool = False
            ) -> dict[str, Any]:
    with workdir(f"{NAME}-{pruner}") as cwd:
        cmd = search_cmd(str(SPACES / "optuna_example.yaml"), "--trials", str(n), "--epochs",
                         str(EPOCHS), "--sampler", "tpe", "--pruner", pruner, "--seed",
                         str(seed), "--no-export", "--timeout", str(cap_s),
                         *(["--batch-trials", "1"] if alone else []))
        s = run_search(cwd, cmd)
        found = trials(cwd)
    hits = {x: _reached(found, x) for x in TARGETS}
    started = [t.datetime_start.timestamp() for t in found if t.datetime_start]
    ended = [t.datetime_complete.timestamp() for t in found if t.datetime_complete]
    values = [t.value for t in found if t.state.name == "COMPLETE" and t.value is not None]
    return {"pruner": pruner, "seed": seed,
            "reached": {str(x): h is not None for x, h in hits.items()},
            "time_to_target_s": {str(x): s.wall_s if h is None else h - s.launched
                                 for x, h in hits.items()},
            "trial_phase_s": max(ended) - min(started) if started and ended else None,
            "best": max(values) if values else None, "wall_s": s.wall_s,
            "trials_finished": sum(t.state.is_finished() for t in found),
            "pruned": sum(t.state.name == "PRUNED" for t in found)}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    n, cap = (60, 150.0) if quick else (100, 300.0)
    seeds = list(range(repeats))
    info = describe(NAME, f"autodl search optuna_example (digits, {EPOCHS} epochs, TPE, MLflow "
                    f"on, export off), up to {n} trials / {cap:.0f}s; target val accuracy "
                    f"{TARGETS}",
                    seeds, "time to target with --pruner none / with hyperband (median over "
                    "seeds of per-seed ratios; > 1: pruning reaches the target sooner)")
    pairs, alone = [], []
    for seed in seeds:
        for runs, unbatched in ((pairs, False), (alone, True)):
            pair = {p: _search(p, seed, n, cap, unbatched) for p in ("hyperband", "none")}
            runs.append(pair)
            for p, r in pair.items():
                print(f"  seed {seed} {p}{' --batch-trials 1' if unbatched else ''}: seconds "
                      f"to target {_show(r)}, {r['trials_finished']} trials finished, "
                      f"{r['pruned']} pruned, trial phase {r['trial_phase_s']:.1f}s, best "
                      f"{r['best']}", flush=True)
    rows = []
    for x in (str(t) for t in TARGETS):
        ratios = [ratio(p["none"]["time_to_target_s"][x], p["hyperband"]["time_to_target_s"][x])
                  for p in pairs]
        r = med(ratios)
        a, b = (med([p[v]["time_to_target_s"][x] for p in pairs]) for v in ("none", "hyperband"))
        goal = x == str(max(TARGETS))  # the harder target is the one pruning is judged on
        rows.append(Row(f"s to val acc {x}: none | hyperband (ratio: median of per-seed)", a, b,
                        r, ">= 3" if goal else "", (r is not None and r >= 3) if goal else None))
    phase = [med([p[v]["trial_phase_s"] for p in pairs]) for v in ("none", "hyperband")]
    rows.append(Row(f"s of trial phase, whole budget of {n} trials: none | hyperband", *phase,
                    ratio(*phase)))
    best = [med([p[v]["best"] for p in pairs]) for v in ("hyperband", "none")]
    rows.append(Row(f"best val acc after {n} trials: hyperband | none", *best, ratio(*best)))
    x = str(max(TARGETS))
    target = [med([p[v]["time_to_target_s"][x] for p in alone]) for v in ("none", "hyperband")]
    rows.append(Row(f"  --batch-trials 1: s to val acc {x}: none | hyperband (ratio: median "
                    "of per-seed)", *target, med([ratio(p["none"]["time_to_target_s"][x],
                                                        p["hyperband"]["time_to_target_s"][x])
                                                  for p in alone])))
    phase = [med([p[v]["trial_phase_s"] for p in alone]) for v in ("none", "hyperband")]
    rows.append(Row(f"  --batch-trials 1: s of trial phase, {n} trials: none | hyperband",
                    *phase, ratio(*phase)))
    return {**info, "rows": rows, "raw": {"batched": pairs, "batch_trials_1": alone}}


def _show(r: dict[str, Any]) -> str:
    return ", ".join(f"{x}: {s:.1f}{'' if r['reached'][x] else ' (not reached)'}"
                     for x, s in r["time_to_target_s"].items())
