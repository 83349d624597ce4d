"""``autodl report``: one self-contained HTML file that says what won, by how much, and what
mattered, with the study's plots (history, families, learning curves, importances,
parallel coordinates, Pareto front) and links to the trials' MLflow runs.

Stages: ``_data`` gathers (Optuna storage, summary.json, MLflow), ``_importance`` and
``_headline`` interpret, ``_figures`` draws (Plotly), ``_render`` fills the template in
``dashboards/report.html.j2``. ``autodl search`` writes ``<out>/report.html`` at its end.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodl._faults import fault_kind
from autodl._lazy import lazy_attributes
from autodl.report._runs import DEFAULT_MLFLOW_UI

__all__ = [
    "DEFAULT_MLFLOW_UI",
    "REPORT_NAME",
    "build_report",
    "load_study",
    "storage_exists",
    "write_report",
    "write_search_report",
]

REPORT_NAME = "report.html"

log = logging.getLogger("autodl.report")


def write_report(study: str, storage: str | None, out: Path | None,
                 tracking_uri: str | None = None, *, mlflow_ui: str = DEFAULT_MLFLOW_UI,
                 ) -> Path:
    """Write the report of ``study`` (in ``storage``, default ./autodl.journal) to ``out``
    (default: the study's output directory, ``runs/<study>/report.html``). Raises
    ``UsageError`` for an unknown study or a missing storage."""
    from autodl._quiet import quiet_optuna
    from autodl.backends import study_out_dir
    from autodl.report._data import load_study
    from autodl.report._render import write_html

    with quiet_optuna():
        optuna_study = load_study(study, storage)
        if out is None:
            out = study_out_dir(optuna_study) / REPORT_NAME
        return write_html(build_report(optuna_study, tracking_uri, mlflow_ui=mlflow_ui), out)


def build_report(study: Any, tracking_uri: str | None, *, summary: Mapping[str, Any] | None = None,
                 use_mlflow: bool = True, mlflow_ui: str = DEFAULT_MLFLOW_UI) -> str:
    """The report's HTML for a loaded Optuna study."""
    from autodl.report._data import gather
    from autodl.report._figures import make_figures
    from autodl.report._headline import make_headline
    from autodl.report._importance import compute_importances
    from autodl.report._render import render

    data = gather(study, tracking_uri, summary, use_mlflow)
    imp = compute_importances(data)
    return render(data, make_headline(data, imp), imp, make_figures(data, imp), mlflow_ui)


def write_search_report(summary: Mapping[str, Any], out_dir: Path, settings: Any,
                        study: Any = None) -> Path | None:
    """The end of ``autodl search``: ``<out_dir>/report.html``, before ``study_end`` (so the
    MLflow tracker logs it on the parent run). ``study``: the loaded Optuna study, when the
    caller has it. Never fails the search but for a fault of the machine (a full disk): a
    failure is a warning, and a stale report from an earlier run is removed, not logged as
    this one."""
    import optuna

    from autodl.backends import open_storage
    from autodl.report._render import write_html

    path = Path(out_dir) / REPORT_NAME
    try:
        study = study or optuna.load_study(study_name=summary["study"],
                                           storage=open_storage(settings.storage))
        html = build_report(study, settings.tracking_uri, summary=summary,
                            use_mlflow=settings.tracking)
        return write_html(html, path)
    except OSError as exc:  # a full disk is an error, naming the report (the runner's)
        path.unlink(missing_ok=True)
        if fault_kind(exc) is None:
            _warn(path, exc, summary)
            return None
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except Exception as exc:  # the report is a view; the search's results stand without it
        _warn(path, exc, summary)
        path.unlink(missing_ok=True)
        return None


def _warn(path: Path, exc: Exception, summary: Mapping[str, Any]) -> None:
    log.warning("could not write the study report %s: %s: %s (retry with `autodl report "
                "%s`)", path, type(exc).__name__, exc, summary.get("study"))

if TYPE_CHECKING:  # the lazy attributes, as type checkers see them (X as X: exported)
    from autodl.report._data import load_study as load_study
    from autodl.report._data import storage_exists as storage_exists

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "load_study": "autodl.report._data",
    "storage_exists": "autodl.report._data",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
