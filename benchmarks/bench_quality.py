"""f. quality: autodl's defaults against a hand-written Optuna + PyTorch loop, on the same
data, machine and wall budget; test accuracy (RMSE for regression), plus a 1-nearest-
neighbour (Euclidean) baseline on the time-series sets.

    python benchmarks/bench_quality.py                       # every set, 120 s and 600 s, 3 seeds
    python benchmarks/bench_quality.py --quick               # UnitTest and wine, 30 s, seed 0
    python benchmarks/bench_quality.py --sets ACSF1,wine --budgets 120 --seeds 0,1,2

Sets: the UCR development sets in ``../shared/data`` (ACSF1, PickupGestureWiimoteZ,
UnitTest; ``AUTODL_DEV_DATA`` points elsewhere), scikit-learn's bundled digits, wine,
breast_cancer and diabetes (regression), any ``synthetic:...`` spec, or a path to an .npz.
A UCR set keeps its archive's train/test split; any other set is split the way
``autodl search --data NAME --seed S`` splits it (20% stratified test, ``random_state=S``)
and written to an .npz, so autodl (``--data that.npz``), the hand loop and 1-NN all see
the same arrays, and autodl uses its test part once, for the final model.

* autodl: ``autodl search SPACE --data X.npz --timeout BUDGET --out out --quiet`` in a
  fresh directory, as a user runs it (journal, MLflow and the model export on, no
  ``--trials``, no ``--seed``: the seed S only draws the .npz's split), with the shipped
  space for the data: ``sequence`` for (n, T, C) series, ``quickstart`` for digits' images,
  ``tabular`` for tables. Test metric and best validation value from ``out/summary.json``;
  wall time of the whole process.
* hand loop: ``benchmarks/_handloop.py`` (FCN-style 1-D CNN or MLP, TPE + MedianPruner,
  ``study.optimize(timeout=BUDGET)``), its own process so that its imports count too.
* 1-NN: ``KNeighborsClassifier(n_neighbors=1)`` on the flattened raw series, no search.

The table goes to stdout, every number to ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _results import save
from _suite import Row, describe, med, ratio, workdir

NAME = "quality"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UCR = ("ACSF1", "PickupGestureWiimoteZ", "UnitTest")
SETS = (*UCR, "digits", "wine", "breast_cancer", "diabetes", "synthetic:sequence?classes=8")
BUDGETS = (120.0, 600.0)
SEEDS = (0, 1, 2)
QUICK = {"sets": ("UnitTest", "wine"), "budgets": (30.0,), "seeds": (0,)}
SPACES = {3: "sequence", 4: "quickstart", 2: "tabular"}  # by X's number of dimensions


def dev_data() -> Path:
    return Path(os.environ.get("AUTODL_DEV_DATA") or ROOT.parent / "shared" / "data")


@dataclass
class Prepared:
    """One set's arrays on disk, as every side reads them."""

    path: Path
    task: str  # classification | regression
    space: str
    series: bool

    @property
    def metric(self) -> str:
        return "rmse" if self.task == "regression" else "accuracy"


def prepare(name: str, seed: int, tmp: Path) -> Prepared:
    """The .npz for ``name`` (a UCR set's own file; otherwise autodl's split for ``seed``)."""
    if name in UCR or name.endswith(".npz"):
        path = dev_data() / f"{name}.npz" if name in UCR else Path(name)
        if not path.is_file():
            sys.exit(f"bench_quality: no {path} (set AUTODL_DEV_DATA to the folder with "
                     f"{', '.join(f'{n}.npz' for n in UCR)})")
        with np.load(path) as npz:
            X, y = npz["X_train"], npz["y_train"]
    else:
        path = tmp / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{seed}.npz"
        X, y = _export(name, seed, path)
    task = "regression" if y.dtype.kind == "f" else "classification"
    return Prepared(path, task, SPACES[X.ndim], X.ndim == 3)


def _export(spec: str, seed: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``--data spec --seed S``'s test split as autodl carves it (autodl.data._split.carve)."""
    from sklearn.model_selection import train_test_split

    from autodl.data import load_raw

    raw = load_raw(spec)
    X, y = np.asarray(raw.X, dtype=np.float32), np.asarray(raw.y)
    if raw.modality == "image" and X.ndim == 3:
        X = X[:, None]  # (n, H, W) -> (n, 1, H, W): the npz's 4-D shape says image
    y = y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int64)
    idx = np.arange(len(y))
    try:
        keep, take = train_test_split(idx, test_size=0.2, random_state=seed,
                                      stratify=y if y.dtype.kind != "f" else None)
    except ValueError:  # a class too small to appear on both sides
        keep, take = train_test_split(idx, test_size=0.2, random_state=seed)
    np.savez(path, X_train=X[keep], y_train=y[keep], X_test=X[take], y_test=y[take])
    return X[keep], y[keep]


def one_nn(path: Path) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    with np.load(path) as d:
        X, y, Xt, yt = (d[k] for k in ("X_train", "y_train", "X_test", "y_test"))
    knn = KNeighborsClassifier(n_neighbors=1).fit(X.reshape(len(X), -1), y)
    return float((knn.predict(Xt.reshape(len(Xt), -1)) == yt).mean())


def _process(cmd: list[str], cwd: Path, budget: float) -> tuple[subprocess.CompletedProcess | None,
                                                                 float]:
    """Run ``cmd``; past 3 x budget + 900 s, or when this script is stopped, the child gets
    SIGTERM (autodl then closes its workers and tracker) and, 30 s later, SIGKILL."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=3 * budget + 900)
    except BaseException as exc:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        return None, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), wall


def _failed(proc: subprocess.CompletedProcess | None, cmd: list[str]) -> str | None:
    if proc is None:
        return "killed: ran past 3 x budget + 900 s"
    if proc.returncode != 0:
        print(f"  ! exit {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-2000:]}", flush=True)
        return f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return None


def run_autodl(prep: Prepared, budget: float, seed: int) -> dict[str, Any]:
    # no --seed: the split is the .npz's (seeded above); a user's search without --seed
    # runs a worker per core (a seeded one keeps one worker, for a repeatable order)
    cmd = [sys.executable, "-m", "autodl", "search", prep.space, "--data", str(prep.path),
           "--timeout", f"{budget:g}", "--out", "out", "--quiet"]
    with workdir(NAME) as cwd:
        proc, wall = _process(cmd, cwd, budget)
        path = cwd / "out" / "summary.json"
        summary = json.loads(path.read_text()) if path.is_file() else {}
    best = summary.get("best") or {}
    return {"test": summary.get("test", {}).get(prep.metric), "val": best.get("value"),
            "wall_s": wall, "trials": summary.get("trials"), "best_trial": best.get("trial"),
            "family": (best.get("params") or {}).get("family"),
            "best_epoch": best.get("best_epoch"), "test_metrics": summary.get("test"),
            "error": _failed(proc, cmd) or (None if summary else "no summary.json"),
            "summary": summary}  # all of it: the layout grows (refit, protocol, ...)


def run_hand(prep: Prepared, budget: float, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "_handloop.py"), "--data", str(prep.path), "--budget",
           f"{budget:g}", "--seed", str(seed), "--task", prep.task]
    with workdir(NAME) as cwd:
        proc, wall = _process(cmd, cwd, budget)
    error = _failed(proc, cmd)
    out = json.loads(proc.stdout.splitlines()[-1]) if proc and not error else {}
    return {"test": out.get("test"), "val": out.get("val"), "wall_s": wall,
            "search_s": out.get("search_s"), "trials": out.get("trials"),
            "best_trial": out.get("best_trial"), "params": out.get("params"), "error": error}


def benchmark(sets: Sequence[str], budgets: Sequence[float],
              seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every (set, seed, budget): autodl, the hand loop (in alternating order, so load
    drifts hit both alike) and, for series, 1-NN."""
    runs = []
    with workdir(f"{NAME}-data") as tmp:
        for name in sets:
            for seed in seeds:
                prep = prepare(name, seed, tmp)
                knn = one_nn(prep.path) if prep.series else None
                for budget in budgets:
                    rec: dict[str, Any] = {"set": name, "budget_s": budget, "seed": seed,
                                           "task": prep.task, "metric": prep.metric,
                                           "space": prep.space, "one_nn": knn}
                    for side in ("autodl", "hand") if seed % 2 == 0 else ("hand", "autodl"):
                        rec[side] = (run_autodl if side == "autodl" else run_hand)(
                            prep, budget, seed)
                        rec[side]["load_1min"] = os.getloadavg()[0]  # others' load shows
                    runs.append(rec)
                    a, h = rec["autodl"], rec["hand"]
                    print(f"  {name} {budget:g}s seed {seed}: test {prep.metric} autodl "
                          f"{_fmt(a['test'])} ({a['wall_s']:.0f}s, trials {a['trials']}), "
                          f"hand {_fmt(h['test'])} ({h['wall_s']:.0f}s, trials {h['trials']})"
                          + (f", 1-NN {knn:.3f}" if knn is not None else ""), flush=True)
    return runs


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (set, budget): medians over seeds, and each seed's numbers."""
    lines: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in runs:
        lines.setdefault((r["set"], r["budget_s"]), []).append(r)
    out = []
    for (name, budget), rs in lines.items():
        def side(key: str, field: str, rs: list[dict[str, Any]] = rs) -> list[float | None]:
            return [r[key][field] for r in rs]

        out.append({"set": name, "budget_s": budget, "metric": rs[0]["metric"],
                    "seeds": [r["seed"] for r in rs],
                    "autodl": med(side("autodl", "test")), "hand": med(side("hand", "test")),
                    "one_nn": med([r["one_nn"] for r in rs]),
                    "autodl_seeds": side("autodl", "test"), "hand_seeds": side("hand", "test"),
                    "autodl_val": med(side("autodl", "val")), "hand_val": med(side("hand", "val")),
                    "autodl_wall_s": med(side("autodl", "wall_s")),
                    "hand_wall_s": med(side("hand", "wall_s")),
                    "autodl_trials": med([sum((r["autodl"]["trials"] or {}).values())
                                          for r in rs]),
                    "hand_trials": med([sum((r["hand"]["trials"] or {}).values()) for r in rs])})
    return out


COLUMNS = ("set", "budget", "metric", "autodl", "hand", "1-NN", "autodl by seed",
           "hand by seed", "autodl wall s", "hand wall s", "autodl trials", "hand trials")


def table(lines: list[dict[str, Any]]) -> str:
    def seeds(values: list[float | None]) -> str:
        return " ".join(_fmt(v) for v in values)

    rows = [[s["set"], f"{s['budget_s']:g}s",
             "RMSE (lower is better)" if s["metric"] == "rmse" else "accuracy",
             _fmt(s["autodl"]), _fmt(s["hand"]), _fmt(s["one_nn"]), seeds(s["autodl_seeds"]),
             seeds(s["hand_seeds"]), _fmt(s["autodl_wall_s"]), _fmt(s["hand_wall_s"]),
             f"{s['autodl_trials']:g}", f"{s['hand_trials']:g}"] for s in lines]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *rows, strict=False)]
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]
    return "\n".join(out)


def _meta() -> dict[str, Any]:
    import optuna
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python", *sys.argv]), "commit": commit,
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__,
            "optuna": optuna.__version__, "machine": platform.platform(),
            "dev_data": str(dev_data())}


def measure(sets: Sequence[str], budgets: Sequence[float],
            seeds: Sequence[int]) -> dict[str, Any]:
    """Run everything, print the table, write ``results/quality.json``."""
    t0 = time.perf_counter()
    meta = _meta() | {"sets": list(sets), "budgets_s": list(budgets), "seeds": list(seeds)}
    runs = benchmark(sets, budgets, seeds)
    lines = summarise(runs)
    text = table(lines)
    meta["seconds"], meta["load_avg_end"] = time.perf_counter() - t0, os.getloadavg()
    print(f"\n{meta['command']}\n{meta['date']}, {meta['cpus']} CPUs, load "
          f"{meta['load_avg'][0]:.1f} at the start, {meta['load_avg_end'][0]:.1f} at the end; "
          f"seeds {','.join(map(str, seeds))}; autodl, hand: median test metric over seeds\n\n"
          f"{text}")
    path = save(NAME, {"meta": meta, "table": lines, "runs": runs})
    print(f"\nwritten: {path} ({meta['seconds']:.0f}s in all)", flush=True)
    return {"lines": lines, "runs": runs, "table": text, "meta": meta}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    """The section of ``benchmarks/run.py``: seeds 0..repeats-1."""
    sets, budgets = (QUICK["sets"], QUICK["budgets"]) if quick else (SETS, BUDGETS)
    seeds = list(range(repeats))
    info = describe(NAME, f"{', '.join(sets)}; autodl search (shipped space, defaults, "
                    "--timeout only) vs benchmarks/_handloop.py (Optuna + PyTorch, "
                    f"study.optimize(timeout)); budgets {', '.join(f'{b:g}' for b in budgets)}"
                    " s; 1-NN for series", seeds,
                    "median test accuracy autodl / hand loop (> 1: autodl better); RMSE "
                    "rows: < 1 autodl better")
    result = measure(sets, budgets, seeds)
    rows = []
    for s in result["lines"]:
        what = "test RMSE (lower better)" if s["metric"] == "rmse" else "test acc"
        rows.append(Row(f"{what}, {s['set']} @{s['budget_s']:g}s: autodl | hand loop",
                        s["autodl"], s["hand"], ratio(s["autodl"], s["hand"])))
        if s["one_nn"] is not None and s["budget_s"] == budgets[0]:
            rows.append(Row(f"test acc, {s['set']}: 1-NN (Euclidean)", s["one_nn"]))
    return {**info, "rows": rows, "raw": {"table": result["lines"], "runs": result["runs"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", metavar="NAME,...", help=f"default: {','.join(SETS)}")
    parser.add_argument("--budgets", metavar="S,...", help="wall budgets in seconds "
                        f"(default: {','.join(f'{b:g}' for b in BUDGETS)})")
    parser.add_argument("--seeds", metavar="N,...", help="default: 0,1,2")
    parser.add_argument("--quick", action="store_true",
                        help="UnitTest and wine, 30 s, seed 0 (unless the options say more)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {"sets": SETS, "budgets": BUDGETS, "seeds": SEEDS}
    sets = args.sets.split(",") if args.sets else list(base["sets"])
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else base["budgets"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else base["seeds"]
    from autodl.data import list_datasets

    known = [name for name, _ in list_datasets()]
    unknown = [s for s in sets if not (s in UCR or s.endswith(".npz") or s in known
                                       or s.startswith("synthetic:"))]
    if unknown:
        parser.error(f"unknown set(s) {unknown}; valid: {', '.join(UCR)}, {', '.join(known)}, "
                     "synthetic:KIND?opt=value, or a path to an .npz")
    minutes = len(sets) * len(seeds) * 2 * sum(budgets) / 60 * 1.3  # + start-up, export
    print(f"{len(sets)} sets x {len(seeds)} seeds x budgets {', '.join(f'{b:g}' for b in budgets)}"
          f" s, 2 sides: about {minutes:.0f} min", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # temp dirs go, children too
    measure(sets, budgets, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
