"""The report's Plotly figures. Every function takes the gathered data and returns a
``plotly.graph_objects.Figure`` (or ``None`` when the study has nothing to draw)."""

from __future__ import annotations

import math
from typing import Any

from autodl.report._data import ReportData, TrialRow
from autodl.report._importance import Importances

__all__ = ["PALETTE", "family_colors", "make_figures"]

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B",
           "#9D755D")
PRUNED = "#A0A7B4"
FAILED = "#C0392B"
FONT = ("-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
        "sans-serif")


def family_colors(data: ReportData) -> dict[str, str]:
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(data.families())}


def make_figures(data: ReportData, imp: Importances) -> dict[str, Any]:
    """{element id: figure}, in page order; figures with nothing to draw are left out."""
    colors = family_colors(data)
    figures = {
        "fig-pareto": pareto(data, colors) if len(data.objectives) > 1 else None,
        "fig-history": history(data, colors),
        "fig-families": families(data, colors),
        "fig-importance": importance(data, imp),
        "fig-curves": curves(data, colors),
        "fig-parallel": parallel(data),
    }
    if len(data.objectives) == 1:  # importances span the page below the curves
        figures["fig-importance"] = figures.pop("fig-importance")
        figures["fig-parallel"] = figures.pop("fig-parallel")
    return {k: v for k, v in figures.items() if v is not None}


def _layout(fig: Any, height: int = 360, **extra: Any) -> Any:
    base = {"template": "plotly_white", "height": height, "hovermode": "closest",
            "font": {"family": FONT, "size": 12}, "margin": {"l": 56, "r": 16, "t": 16, "b": 44},
            "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0,
                       "bgcolor": "rgba(0,0,0,0)"}}
    fig.update_layout(**{**base, **extra})
    return fig


def _metric_label(data: ReportData, metric: str | None = None) -> str:
    metric = metric or data.metric
    arrow = "↑" if data.maximize else "↓"
    return f"val {metric} {arrow}" if metric == data.metric else f"val {metric}"


def history(data: ReportData, colors: dict[str, str]) -> Any:
    """Every trial's value by trial number, with the best-so-far line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    pruned = [t for t in data.trials if t.state == "PRUNED" and t.value is not None]
    if pruned:
        fig.add_scatter(x=[t.number for t in pruned], y=[t.value for t in pruned],
                        mode="markers", name="pruned (last value)",
                        marker={"color": PRUNED, "symbol": "x-thin-open", "size": 8},
                        hovertemplate="trial %{x} (pruned)<br>%{y:.4g}<extra></extra>")
    finished = sorted(data.ranked(), key=lambda t: t.number)
    for family in data.families():
        mine = [t for t in finished if t.family == family]
        if mine:
            fig.add_scatter(x=[t.number for t in mine], y=[t.value for t in mine],
                            mode="markers", name=family, marker={"color": colors[family],
                                                                 "size": 9},
                            hovertemplate=f"trial %{{x}} ({family})<br>%{{y:.4g}}<extra></extra>")
    xs, ys = _best_so_far(data, finished)
    fig.add_scatter(x=xs, y=ys, mode="lines", name="best so far", line={
        "color": "#222", "width": 2, "shape": "hv"}, hoverinfo="skip")
    _mark_winner(fig, data)
    return _layout(fig, xaxis_title="trial", yaxis_title=_metric_label(data))


def _best_so_far(data: ReportData, finished: list[TrialRow]) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    pick = max if data.maximize else min
    for t in finished:
        best = t.value if best is None else pick(best, t.value or best)
        xs.append(t.number)
        ys.append(best or 0.0)
    if xs and data.trials:
        xs.append(max(t.number for t in data.trials))
        ys.append(ys[-1])
    return xs, ys


def _mark_winner(fig: Any, data: ReportData) -> None:
    win = data.winner()
    if win is not None:
        fig.add_annotation(x=win.number, y=win.value, text=f"winner: trial {win.number}",
                           showarrow=True, arrowhead=2, ax=0, ay=-34,
                           font={"size": 12, "color": "#222"}, bgcolor="rgba(255,255,255,.85)")


def families(data: ReportData, colors: dict[str, str]) -> Any:
    """Values per family: a box with every completed trial as a point, best family first."""
    import plotly.graph_objects as go

    ranked = data.ranked()
    if not ranked:
        return None
    order = list(dict.fromkeys(t.family for t in ranked))
    fig = go.Figure()
    tried = {f: sum(t.family == f for t in data.trials) for f in order}
    for family in order:
        mine = [t for t in ranked if t.family == family]
        fig.add_box(y=[t.value for t in mine], name=f"{family} ({len(mine)}/{tried[family]})",
                    boxpoints="all", jitter=0.35, pointpos=0, marker={"size": 7},
                    line={"color": colors[family]}, fillcolor=_alpha(colors[family], 0.15),
                    text=[f"trial {t.number}" for t in mine],
                    hovertemplate="%{text}<br>%{y:.4g}<extra></extra>", showlegend=False)
    missing = [f for f in data.families() if f not in order]
    if missing:
        fig.add_annotation(text=f"no completed trial: {', '.join(missing)}", showarrow=False,
                           xref="paper", yref="paper", x=1, y=1.06, xanchor="right",
                           font={"color": "#666"})
    return _layout(fig, yaxis_title=_metric_label(data),
                   xaxis_title="family (completed / all trials)")


def _alpha(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def curves(data: ReportData, colors: dict[str, str]) -> Any:
    """Per-epoch validation metric of every trial; pruned ones grey, dashed, cut short."""
    import plotly.graph_objects as go

    drawn = [t for t in data.trials if t.curve]
    if not drawn:
        return None
    winner = getattr(data.winner(), "number", None)
    fig = go.Figure()
    seen: set[str] = set()
    for t in sorted(drawn, key=lambda t: (t.number == winner, t.state == "COMPLETE")):
        group = t.family if t.state == "COMPLETE" else t.state.lower()
        fig.add_scatter(**_curve_trace(t, colors, t.number == winner),
                        legendgroup=group, showlegend=group not in seen or t.number == winner)
        seen.add(group)
    return _layout(fig, height=400, xaxis_title="epoch",
                   yaxis_title=_metric_label(data, data.curve_metric),
                   xaxis={"dtick": 1 if max(len(t.curve) for t in drawn) <= 20 else None})


def _curve_trace(t: TrialRow, colors: dict[str, str], winner: bool) -> dict[str, Any]:
    xs, ys = zip(*t.curve, strict=True)
    base = {"x": list(xs), "y": list(ys), "hovertemplate":
            f"trial {t.number} ({t.family}, {t.state.lower()})<br>epoch %{{x}}: %{{y:.4g}}"
            "<extra></extra>"}
    if winner:
        return {**base, "name": f"winner: trial {t.number}", "mode": "lines+markers",
                "line": {"color": colors[t.family], "width": 4}, "marker": {"size": 7}}
    if t.state == "COMPLETE":
        return {**base, "name": t.family, "mode": "lines", "opacity": 0.7,
                "line": {"color": colors[t.family], "width": 1.5}}
    if t.state not in ("PRUNED", "FAIL"):  # still running: no end marker yet
        return {**base, "name": t.state.lower(), "mode": "lines",
                "line": {"color": colors[t.family], "width": 1.2, "dash": "dot"}}
    color = PRUNED if t.state == "PRUNED" else FAILED
    symbols = ["circle"] * (len(xs) - 1) + ["x"]
    sizes = [0] * (len(xs) - 1) + [9]
    return {**base, "name": f"{t.state.lower()} (cut short)", "mode": "lines+markers",
            "line": {"color": color, "width": 1.2, "dash": "dash"},
            "marker": {"color": color, "symbol": symbols, "size": sizes}}


def importance(data: ReportData, imp: Importances) -> Any:
    """fANOVA importances; the winning family's own parameters in a second panel."""
    if not imp.scores:
        return None
    from plotly.subplots import make_subplots

    panels = [("every completed trial", imp.scores)]
    if imp.within:
        panels.append((f"within {imp.family}", imp.within))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.28)
    for col, (_, scores) in enumerate(panels, start=1):
        names = list(scores)[:8][::-1]
        fig.add_bar(x=[scores[n] for n in names], y=names, orientation="h", row=1, col=col,
                    marker={"color": ["#4C78A8"] * (len(names) - 1) + ["#1F3B5C"]},
                    text=[f"{scores[n]:.0%}" for n in names], textposition="outside",
                    cliponaxis=False, hovertemplate="%{y}: %{x:.1%}<extra></extra>",
                    showlegend=False)
        fig.update_xaxes(tickformat=".0%", range=[0, 1.15 * max(scores.values())],
                         row=1, col=col)
    fig.update_annotations(font={"size": 12, "color": "#555"})
    return _layout(fig, margin={"l": 150, "r": 24, "t": 36, "b": 36})


def parallel(data: ReportData) -> Any:
    """Parameters every completed trial has, coloured by the objective."""
    import plotly.graph_objects as go

    ranked = data.ranked()
    if len(ranked) < 2:
        return None
    names = sorted(set.intersection(*(set(t.params) for t in ranked)))
    dims = [_dimension(name, ranked) for name in names]
    dims.append({"label": _metric_label(data), "values": [t.value for t in ranked]})
    fig = go.Figure(go.Parcoords(
        dimensions=dims, labelangle=0, labelside="top",
        line={"color": [t.value for t in ranked], "colorscale": "Viridis",
              "reversescale": not data.maximize, "showscale": False}))
    return _layout(fig, height=380, margin={"l": 72, "r": 56, "t": 56, "b": 24})


def _dimension(name: str, trials: list[TrialRow]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    values = [t.params[name] for t in trials]
    dist = trials[0].distributions.get(name)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric and not isinstance(dist, CategoricalDistribution):
        if getattr(dist, "log", False) and min(values) > 0:
            logs = [math.log10(v) for v in values]
            ticks = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1))
            return {"label": f"{name} (log)", "values": logs, "tickvals": ticks,
                    "ticktext": [f"1e{k}" for k in ticks]}
        return {"label": name, "values": values}
    choices = [str(v) for v in sorted(set(values), key=lambda v: (str(type(v)), v))]
    return {"label": name, "values": [choices.index(str(v)) for v in values],
            "tickvals": list(range(len(choices))), "ticktext": choices}


def _values(t: TrialRow) -> list[float]:
    """A ranked trial's values (``finished``: present, one per objective)."""
    assert t.values is not None
    return t.values


def pareto(data: ReportData, colors: dict[str, str]) -> Any:
    """The first two objectives of every completed trial; the Pareto front joined."""
    import plotly.graph_objects as go

    ranked = data.ranked()
    if not ranked:
        return None
    front = {t.number for t in data.optuna_study.best_trials}
    (m1, d1), (m2, d2) = data.objectives[:2]
    fig = go.Figure()
    for family in data.families():
        mine = [t for t in ranked if t.family == family]
        if mine:
            fig.add_scatter(x=[_values(t)[1] for t in mine], y=[_values(t)[0] for t in mine],
                            mode="markers", name=family, marker={
                                "color": colors[family], "size": [13 if t.number in front
                                                                  else 7 for t in mine],
                                "line": {"width": [2 if t.number in front else 0
                                                   for t in mine], "color": "#222"}},
                            text=[f"trial {t.number}" for t in mine],
                            hovertemplate="%{text}<br>%{y:.4g} · %{x:.4g}<extra></extra>")
    on_front = sorted((t for t in ranked if t.number in front), key=lambda t: _values(t)[1])
    fig.add_scatter(x=[_values(t)[1] for t in on_front], y=[_values(t)[0] for t in on_front],
                    mode="lines", name=f"Pareto front ({len(on_front)})",
                    line={"color": "#222", "width": 1.5, "shape": "hv"}, hoverinfo="skip")
    arrow = {"maximize": "↑", "minimize": "↓"}
    log_x = min(_values(t)[1] for t in ranked) > 0 and (
        max(_values(t)[1] for t in ranked) / min(_values(t)[1] for t in ranked) > 30)
    return _layout(fig, height=400, xaxis_title=f"{m2} {arrow[d2]}",
                   yaxis_title=f"{_metric_label(data, m1).rstrip(' ↑↓')} {arrow[d1]}",
                   xaxis_type="log" if log_x else None)
