"""One self-contained HTML file from ``dashboards/report.html.j2``: plotly.js inlined once,
the figures as JSON, no resource loaded from anywhere (links to MLflow runs are links)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from autodl._faults import writing
from autodl.report._data import ReportData, TrialRow
from autodl.report._figures import family_colors
from autodl.report._headline import Headline, fmt
from autodl.report._importance import Importances
from autodl.report._runs import run_url

__all__ = ["TEMPLATE", "render", "table_rows"]

TEMPLATE = "report.html.j2"
_TOP = 10
_CAPTIONS = {
    "fig-history": ("Optimization history", "Each completed trial's value (colour: family; "
                    "grey ×: pruned, at its last reported value) and the best so far."),
    "fig-families": ("Families compared", "Every completed trial per family, best family "
                     "first; (completed / all) trials of each family."),
    "fig-curves": ("Learning curves", "Validation metric per epoch of every trial. Pruned "
                   "trials are grey, dashed and end in ×, where the pruner cut them short."),
    "fig-importance": ("What mattered", "Share of the variance in the objective each "
                       "hyperparameter explains (fANOVA, seeded)."),
    "fig-parallel": ("Parallel coordinates", "Completed trials across the parameters they "
                     "all share; drag along an axis to filter."),
    "fig-pareto": ("Pareto front", "Completed trials on the first two objectives; outlined "
                   "points are on the front (no trial beats them on both)."),
}


def render(data: ReportData, head: Headline, imp: Importances, figures: dict[str, Any],
           mlflow_ui: str) -> str:
    import jinja2
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    from autodl.version import __version__

    env = jinja2.Environment(loader=jinja2.PackageLoader("autodl", "dashboards"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    panels = _panels(list(figures))
    return env.get_template(TEMPLATE).render(
        study=data.study, head=head, imp=imp, panels=panels, data=data,
        figures_json=Markup(_figures_json(figures)),
        plotly_js=Markup(get_plotlyjs()),
        rows=table_rows(data, mlflow_ui), objectives=data.objectives,
        notes=[*data.notes, *imp.notes], meta=_meta(data, mlflow_ui),
        colors=family_colors(data), version=__version__,
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))


def _panels(ids: list[str]) -> list[dict[str, Any]]:
    """Title, caption and width of each figure's panel: curves and parallel coordinates
    span the page, and so does the last half-width panel when it would be alone."""
    wide = {"fig-curves", "fig-parallel"}
    halves = [k for k in ids if k not in wide]
    if len(halves) % 2:  # the last half-width panel would be alone on its row
        wide.add(halves[-1])
    return [{"id": k, "title": _CAPTIONS[k][0], "caption": _CAPTIONS[k][1], "wide": k in wide}
            for k in ids]


def _figures_json(figures: dict[str, Any]) -> str:
    """``{id: {data, layout}}`` as a JS literal that cannot close the <script> early."""
    parts = [f"{json.dumps(k)}: {fig.to_json()}" for k, fig in figures.items()]
    text = "{" + ", ".join(parts) + "}"
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _meta(data: ReportData, mlflow_ui: str) -> dict[str, Any]:
    attrs = data.attrs
    ml = data.mlflow
    return {
        "space": attrs.get("autodl.space"), "data": attrs.get("autodl.data"),
        "task": attrs.get("autodl.task"), "modality": attrs.get("autodl.modality"),
        "epochs": attrs.get("autodl.epochs"),
        "objectives": ", ".join(f"{m} ({d})" for m, d in data.objectives),
        "experiment_url": (f"{mlflow_ui.rstrip('/')}/#/experiments/{ml['experiment_id']}/runs"
                           if ml.get("experiment_id") else None),
        "parent_url": run_url(mlflow_ui, ml.get("experiment_id"), ml.get("parent_run_id")),
    }


def table_rows(data: ReportData, mlflow_ui: str) -> list[dict[str, Any]]:
    """The top trials, best first, with what the table shows."""
    rows = []
    for rank, t in enumerate(data.ranked()[:_TOP], start=1):
        rows.append({
            "rank": rank, "trial": t.number, "family": t.family,
            "values": [fmt(v) for v in t.values or []],
            "params_count": f"{t.params_count:,}" if t.params_count else "–",
            "epochs": f"{t.best_epoch or '–'} / {t.epochs_run}",
            "duration": f"{t.duration_s:.1f} s" if t.duration_s is not None else "–",
            "params": _compact(t),
            "url": run_url(mlflow_ui, data.mlflow.get("experiment_id"), t.run_id),
        })
    return rows


def _compact(t: TrialRow) -> str:
    """``lr 3.2e-03 · adamw · cosine · batch 64 · width 128`` (the family's prefix dropped)."""
    parts = []
    for key, value in t.params.items():
        if key == "family":
            continue
        short = key.split(".")[-1] if "." in key else ""
        short = {"batch_size": "batch"}.get(short, short)
        text = f"{value:.2g}" if isinstance(value, float) else str(value)
        parts.append(f"{short} {text}" if short else text)
    return " · ".join(parts)


def write_html(text: str, out: Path) -> Path:
    """Written to a temporary name first: a reader never sees half a report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with writing(tmp):  # a full disk leaves no half-written temporary file behind
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    return out
