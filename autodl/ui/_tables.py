"""Tables printed at the end of a search and by ``autodl best``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_model", "print_summary", "top_trials_table"]


def _short(config: Mapping[str, Any]) -> str:
    opt = config.get("optimizer", {})
    model = config.get("model", {})
    bits = [f"{k}={_v(v)}" for k, v in list(model.items())[:4]]
    bits.append(f"{opt.get('name')} lr={_v(opt.get('lr'))}")
    bits.append(f"bs={config.get('training', {}).get('batch_size')}")
    return ", ".join(bits)


def _v(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def top_trials_table(trials: list[Any], objectives: list[tuple[str, str]]) -> Table:
    table = Table(title="Top trials", header_style="bold")
    table.add_column("trial", justify="right")
    for metric, _ in objectives:
        table.add_column(metric, justify="right")
    table.add_column("family")
    table.add_column("epochs", justify="right")
    table.add_column("params", justify="right")
    table.add_column("hyperparameters")
    for t in trials:
        config = t.user_attrs.get("config", {})
        params = t.user_attrs.get("params_count") or 0
        table.add_row(str(t.number), *[f"{v:.4g}" for v in t.values], str(config.get("family")),
                      str(t.user_attrs.get("best_epoch")), f"{params:,}", _short(config))
    return table


def print_summary(console: Console, summary: Mapping[str, Any], trials: list[Any]) -> None:
    objectives = [(o["metric"], o["direction"]) for o in summary.get("objectives", [])]
    if trials:
        console.print(top_trials_table(trials, objectives))
    best = summary.get("best")
    counts = summary.get("trials", {})
    stopped = f" (stopped: {summary['stopped']})" if summary.get("stopped") else ""
    console.print(f"trials: {counts.get('complete', 0)} complete, {counts.get('pruned', 0)} "
                  f"pruned, {counts.get('failed', 0)} failed{stopped}")
    if best is None:
        console.print("[red]no trial completed[/]")
        return
    protocol = summary.get("protocol") or {}
    scored = f" ({protocol['k']}-fold cross-validation)" if protocol.get("kind") == "cv" else ""
    console.print(f"best: trial {best['trial']} {summary['metric']}={best['value']:.4g}{scored}")
    refit = summary.get("refit") or {}
    if refit.get("error"):
        console.print(f"[yellow]refit failed ({refit['error']}): the best trial's own weights "
                      "are tested and exported[/]", soft_wrap=True)
    ensemble = summary.get("ensemble") or {}
    final = (f"refit on all {refit['samples']} training samples, {refit['epochs']} epochs"
             if refit.get("dir") and not refit.get("error") and not ensemble.get("chosen")
             else "best trial")
    if ensemble.get("chosen"):
        members = ", ".join(f"#{m['trial']} x{m['weight']:.2f}" for m in ensemble["members"])
        console.print(f"ensemble: {members}; held-out {summary['metric']} "
                      f"{ensemble['score']:.4g} against {ensemble['single']['score']:.4g} for "
                      "the best single model", soft_wrap=True)
        refitted = sum(bool(m.get("refit")) for m in ensemble["members"])
        final = (f"ensemble of {len(ensemble['members'])}, {refitted} refit on all "
                 f"{refit.get('samples')} training samples" if refitted else
                 f"ensemble of {len(ensemble['members'])}")
    if summary.get("test"):
        console.print(f"test ({final}, used once): " + ", ".join(
            f"{k}={v:.4g}" for k, v in summary["test"].items()))
    print_model(console, summary.get("model"))


def print_model(console: Console, model: Mapping[str, Any] | None) -> None:
    """Where the exported model is, the formats written, and each failed one's reason."""
    if not model:
        return
    files = model.get("files") or {}
    if files:
        console.print(f"model: {model.get('dir')} ({', '.join(files)})", soft_wrap=True)
    if model.get("error"):
        console.print(f"[red]export failed:[/] {model['error']}", soft_wrap=True)
        return
    for fmt, why in (model.get("failed") or {}).items():
        console.print(f"[red]export {fmt} failed:[/] {why}", soft_wrap=True)
