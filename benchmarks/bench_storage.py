"""c. storage + tracking cost per trial: one small fixed search (random sampler, no pruner,
tiny epochs, same seed, so every variant trains the same configs) with (i) the default
journal file + MLflow, (ii) the journal with ``--no-tracking``, (iii) in-memory storage.

autodl has no in-memory storage option (``--storage`` is a journal path or a database URL,
and the summary re-opens the study from it), so (iii) is autodl itself launched with
``open_storage`` patched to return one shared ``optuna.storages.InMemoryStorage``
(``python benchmarks/bench_storage.py --memory DUMP.json -- search ARGS``), tracking off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from _suite import (
    SPACES,
    Row,
    describe,
    duration_sum,
    med,
    phase_s,
    ratio,
    run_search,
    search_cmd,
    trials,
    workdir,
)

NAME = "storage"
VARIANTS = ("journal+mlflow", "journal", "memory")


def memory_main(dump: str, argv: list[str]) -> int:
    """autodl's CLI with every ``open_storage`` returning one in-memory storage."""
    import optuna

    import autodl.backends._optuna as backend
    import autodl.backends._storage as storage
    from autodl.cli import main

    shared = optuna.storages.InMemoryStorage()
    storage.open_storage = backend.open_storage = lambda url=None: shared
    code = main(argv)
    found = optuna.load_study(study_name=argv[argv.index("--study") + 1], storage=shared).trials
    Path(dump).write_text(json.dumps({"in_trials_s": duration_sum(found),
                                      "phase_s": phase_s(found)}))
    return code


def _one(variant: str, flags: list[str]) -> dict[str, float]:
    with workdir(f"{NAME}-{variant}") as cwd:
        cmd = search_cmd(str(SPACES / "optuna_example.yaml"), *flags)
        if variant == "memory":
            cmd = [sys.executable, __file__, "--memory", str(cwd / "d.json"), "--", *cmd[3:],
                   "--no-tracking"]
        elif variant == "journal":
            cmd.append("--no-tracking")
        s = run_search(cwd, cmd)
        if variant == "memory":
            return {"wall_s": s.wall_s, **json.loads((cwd / "d.json").read_text())}
        found = trials(cwd)
        return {"wall_s": s.wall_s, "in_trials_s": duration_sum(found),
                "phase_s": phase_s(found)}


def run(quick: bool, repeats: int) -> dict[str, Any]:
    n, epochs = (6 if quick else 20), 1
    flags = ["--trials", str(n), "--epochs", str(epochs), "--sampler", "random", "--pruner",
             "none", "--seed", "0", "--no-export"]
    info = describe(NAME, f"autodl search spaces/optuna_example.yaml (digits, small MLPs), {n} "
                    f"trials x {epochs} epoch, random "
                    "sampler, no pruner, export off; (i) journal + MLflow, (ii) journal, "
                    "(iii) in-memory Optuna storage, no tracking", [0] * repeats,
                    "ms per trial outside training (wall - sum duration_s) / trials, over "
                    "the in-memory baseline's; ratio: variant / baseline")
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for i in range(repeats):
        for variant in VARIANTS[i % 3:] + VARIANTS[: i % 3]:  # rotate the order
            runs[variant].append(_one(variant, flags))
        print("  repeat {}: {}".format(i, ", ".join(
            f"{v} {runs[v][-1]['wall_s']:.2f}s" for v in VARIANTS)), flush=True)
    return {**info, "rows": _rows(runs, n), "raw": runs}


def _rows(runs: dict[str, list[dict[str, float]]], n: int) -> list[Row]:
    def per_variant(f: Any) -> dict[str, float | None]:
        return {v: med([f(r) for r in runs[v]]) for v in VARIANTS}

    ms = per_variant(lambda r: (r["wall_s"] - r["in_trials_s"]) * 1000 / n)
    steady = per_variant(lambda r: (r["phase_s"] - r["in_trials_s"]) * 1000 / n)
    fixed = per_variant(lambda r: r["wall_s"] - r["phase_s"])
    rows = []
    for v in VARIANTS[:2]:
        rows += [Row(f"ms/trial over in-memory: {v} | in-memory's own", _minus(ms[v], ms["memory"]),
                     ms["memory"], ratio(ms[v], ms["memory"])),
                 Row(f"  of which per trial, in the trial phase: {v} | in-memory's own",
                     _minus(steady[v], steady["memory"]), steady["memory"],
                     ratio(steady[v], steady["memory"])),
                 Row(f"  and fixed s (before first trial + after last): {v} | in-memory",
                     fixed[v], fixed["memory"], ratio(fixed[v], fixed["memory"]))]
    return rows


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--memory" and sys.argv[3] == "--":
        sys.exit(memory_main(sys.argv[2], sys.argv[4:]))
    sys.exit("usage: bench_storage.py --memory DUMP.json -- search SPACE [flags]")
