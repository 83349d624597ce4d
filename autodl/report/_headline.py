"""The report's first lines: what won, by how much, and what mattered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autodl.report._data import ReportData, TrialRow
from autodl.report._importance import Importances

__all__ = ["Headline", "fmt", "make_headline"]


@dataclass
class Headline:
    winner: TrialRow | None
    subject: str | None  # "cnn" (the winning family), or "Trial 3" with one family
    value: str  # "val accuracy 0.9861 (trial 17)"
    # (the figure, the rest): ("0.0139 higher", "val accuracy than the best mlp (trial 4...")
    margin: tuple[str, str] | None = None
    mattered: tuple[str, str] | None = None  # ("family: 54%", "of the variance in ...")
    within: str | None = None  # "Within cnn: optimizer.lr 46%, ..."
    kpis: list[tuple[str, str]] = field(default_factory=list)


def fmt(value: float | None) -> str:
    """4 significant digits; thousands separators for large numbers."""
    if value is None:
        return "–"
    if abs(value) >= 1000 or (abs(value) >= 10 and float(value).is_integer()):
        return f"{value:,.0f}"
    return f"{value:#.4g}" if value else "0"


def make_headline(data: ReportData, imp: Importances) -> Headline:
    ranked = data.ranked()
    if not ranked:
        return Headline(None, None, "nothing to rank yet",
                        kpis=_kpis(data, None))
    win = data.winner() or ranked[0]
    values = " · ".join(f"{_label(m)} {fmt(v)}" for (m, _), v in
                        zip(data.objectives, win.values or [], strict=False))
    head = Headline(win, win.family if len(data.families()) > 1 else f"Trial {win.number}",
                    f"{values} (trial {win.number})",
                    kpis=_kpis(data, win))
    head.margin = _margin(data, win, ranked)
    head.mattered = _mattered(data, imp)
    if imp.within:
        head.within = f"Within {imp.family}: " + ", ".join(
            f"{k} {v:.0%}" for k, v in list(imp.within.items())[:3])
    return head


def _label(metric: str) -> str:
    return metric if metric in ("params", "latency_ms") else f"val {metric}"


def _margin(data: ReportData, win: TrialRow, ranked: list[TrialRow]
            ) -> tuple[str, str] | None:
    others = [t for t in ranked if t.family != win.family]
    rest = [t for t in ranked if t is not win]
    runner = others[0] if others else (rest[0] if rest else None)
    if runner is None or win.value is None or runner.value is None:
        return None
    who = (f"the best {runner.family}" if others else "the next-best trial")
    who += f" (trial {runner.number}: {fmt(runner.value)})"
    diff = abs(win.value - runner.value)
    if diff == 0:
        return "tied", f"with {who}; the earlier trial ranks first"
    sign, where, word = ("+", "over", "higher") if data.maximize else ("−", "below", "lower")
    rel = f", {diff / abs(runner.value):.1%} {word}" if runner.value else ""
    return f"{sign}{fmt(diff)} {_label(data.metric)}", f"{where} {who}{rel}"


def _mattered(data: ReportData, imp: Importances) -> tuple[str, str] | None:
    items = list(imp.scores.items())
    if not items:
        return None
    name, share = items[0]
    text = f"explains {share:.0%} of the variance in {_label(data.metric)}"
    if len(items) > 1:
        text += "; then " + ", ".join(f"{k} ({v:.0%})" for k, v in items[1:3])
    return name, text


def _kpis(data: ReportData, win: TrialRow | None) -> list[tuple[str, str]]:
    states = [t.state for t in data.trials]
    kpis = [("trials", f"{states.count('COMPLETE')} complete · {states.count('PRUNED')} "
                       f"pruned · {states.count('FAIL')} failed"
                       + (f" · {states.count('RUNNING')} running" if "RUNNING" in states
                          else ""))]
    test = data.summary.get("test") or {}
    best = data.summary.get("best") or {}
    if win is not None and data.metric in test and best.get("trial") == win.number:
        kpis.append((f"test {data.metric} (final model)", fmt(test[data.metric])))
    if win is not None and best.get("trial") == win.number:
        kpis.append(("final model", final_model(data.summary)))
    if win is not None and win.params_count:
        kpis.append(("winner's weights", f"{win.params_count:,}"))
    if len(data.objectives) > 1 and data.optuna_study is not None:
        kpis.append(("Pareto front", f"{len(data.optuna_study.best_trials)} trials"))
    seconds = sum(t.duration_s or 0.0 for t in data.trials)
    if seconds:
        kpis.append(("training time", _duration(seconds)))
    return kpis


def final_model(summary: dict[str, Any]) -> str:
    """What was tested and exported: the ensemble, the refit, or the trial's weights."""
    ensemble, refit = summary.get("ensemble") or {}, summary.get("refit") or {}
    if ensemble.get("chosen"):
        members = ", ".join(f"#{m['trial']} x{m['weight']:.2f}" for m in ensemble["members"])
        refitted = sum(bool(m.get("refit")) for m in ensemble["members"])
        return (f"ensemble of {len(ensemble['members'])} trials ({members}), {refitted} refit "
                f"on all {refit.get('samples', '?')} training samples")
    if refit.get("dir") and not refit.get("error"):
        return (f"the best configuration refit on all {refit['samples']} training samples "
                f"for {refit['epochs']} epochs")
    return "the best trial's own weights"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
