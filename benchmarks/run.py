"""The benchmark suite: every comparison side by side, medians and ratios in one table.

    python benchmarks/run.py [--quick] [--only overhead,startup,...] [--repeats N]

Each comparison is ``benchmarks/bench_<name>.py`` with ``run(quick, repeats) -> dict``; it
prints its workload, seeds and what its ratio means, and launches the searches it times as
separate processes. The table goes to stdout, everything (per-repeat numbers included) to
``benchmarks/results/suite.json`` (merged into an existing file with ``--only``).
``--quick``: few trials, short budgets, one repetition unless ``--repeats`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

NAMES = ("overhead", "phases", "startup", "storage", "pruning", "scaling", "quality", "training")
RESULTS = Path(__file__).resolve().parent / "results" / "suite.json"
COLUMNS = ("comparison", "measure", "A", "B", "ratio", "target", "met")


def _fmt(value: float | bool | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [[name, r["measure"], _fmt(r["a"]), _fmt(r["b"]), _fmt(r["ratio"]), r["target"],
              _fmt(r["met"]) if r["target"] else ""]
             for name, res in results.items() for r in res["rows"]]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *lines, strict=False)]
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]
    return "\n".join(out)


def _run_one(name: str, quick: bool, repeats: int) -> dict[str, Any]:
    module = importlib.import_module(f"bench_{name}")
    t0 = time.perf_counter()
    result = module.run(quick, repeats)
    result["rows"] = [asdict(r) for r in result["rows"]]
    result["seconds"] = time.perf_counter() - t0
    print(f"  ({name}: {result['seconds']:.0f}s)", flush=True)
    return result


def _meta(args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    import torch

    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "quick": args.quick, "repeats": repeats, "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__, "machine": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few trials, one repetition")
    parser.add_argument("--only", metavar="NAME,...", help=f"any of {', '.join(NAMES)}")
    parser.add_argument("--repeats", type=int, help="repetitions / seeds (default 3; quick 1)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown comparison(s) {unknown}; valid: {', '.join(NAMES)}")
    repeats = args.repeats or (1 if args.quick else 3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # ends the searches it runs too
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    t0 = time.perf_counter()
    results = {name: _run_one(name, args.quick, repeats) for name in names}
    meta = _meta(args, repeats) | {"seconds": time.perf_counter() - t0}
    print(f"\nbenchmarks/run.py{' --quick' if args.quick else ''}, repeats {repeats}, "
          f"{meta['date']}, {meta['cpus']} CPUs, load {meta['load_avg'][0]:.1f}; "
          "A, B: medians over repeats; ratio: A / B unless the comparison says otherwise\n")
    print(table(results))
    saved = json.loads(RESULTS.read_text()) if args.only and RESULTS.is_file() else {}
    saved["meta"] = meta
    saved["comparisons"] = saved.get("comparisons", {}) | results
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2, default=str))
    print(f"\nwritten: {RESULTS} ({meta['seconds']:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
