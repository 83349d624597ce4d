"""The package's structure: layers point down (import-linter's contract in .importlinter)
and no module is part of an import cycle, at any depth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_layers_point_down() -> None:
    """cli > join/validate/ui/webui > runner > report > tracking > summary > backends and
    doctor > workers > export/selection > space > train > data > models > core."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_layers_private_modules_are_imported_only_inside_their_package() -> None:
    """``a.b._c`` is ``a.b``'s own: its modules and subpackages import it, no one else
    (another package uses what ``a.b``'s ``__init__`` offers)."""
    import grimp

    graph = grimp.build_graph("autodl")
    outside = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            parts = imported.split(".")
            private = next(i for i, p in enumerate([*parts, "_"]) if p.startswith("_"))
            owner = ".".join(parts[:private])
            if private < len(parts) and not (importer + ".").startswith(owner + "."):
                outside.append(f"{importer} imports {imported}")
    assert outside == []


def test_layers_no_module_is_in_an_import_cycle() -> None:
    import grimp

    graph = grimp.build_graph("autodl")
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [c for c in _strongly_connected(edges) if len(c) > 1]
    assert cycles == []


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the graph's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out
