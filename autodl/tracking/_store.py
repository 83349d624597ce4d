"""The MLflow side of tracking, run in the tracking child process (``_process``).

An experiment per study, a parent run, one nested child run per trial; explicit run ids
everywhere (never the fluent "active run"), so parallel trials cannot cross. Per-epoch
metrics are buffered and logged in batches with ``step=epoch``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from autodl.events import FinishedTrial, StudyInfo, TrialEnd
from autodl.tracking._params import mlflow_params
from autodl.tracking._sqlite_store import ensure_sqlite_store

__all__ = ["MlflowStore"]

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
_BATCH = 900  # < MLflow's 1000 metrics per log_batch


class MlflowStore:
    """``joining=True`` (``autodl worker``): add child runs under the study's existing parent
    run; never create, end or kill the parent, nor other processes' runs. ``owner``: the
    search process's id, tagged on its runs (a live owner's RUNNING runs are left alone)."""

    def __init__(self, uri: str, register: str | None, joining: bool, owner: str) -> None:
        self.uri, self.register, self.joining, self.owner = uri, register, joining, owner
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.runs: dict[int, str] = {}
        self.states: dict[int, str | None] = {}  # per trial: its run's autodl.state tag
        self.open: set[int] = set()
        self.buffers: dict[int, list[Any]] = {}  # per trial: metrics not yet written
        self.params: dict[int, list[Any]] = {}  # per trial: params not yet written
        self.info: StudyInfo | None = None
        self.ended = False
        self.model_id: str | None = None  # the final model's MLflow Logged Model
        self.registered: dict[str, str] | None = None  # {name, version} with --register

    def summary_fields(self) -> dict[str, Any]:
        return {"uri": self.uri, "experiment_id": self.experiment_id,
                "parent_run_id": self.parent_id,
                "trial_run_ids": {str(k): v for k, v in sorted(self.runs.items())},
                "model_id": self.model_id,
                "model_uri": f"models:/{self.model_id}" if self.model_id else None,
                "registered_model": self.registered}

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.parent_id, path, artifact_path)

    def setup(self, info: StudyInfo, stamp: int) -> None:
        self.info = info
        from mlflow import MlflowClient

        for name in ("alembic", "mlflow"):  # after the import: MLflow sets its own levels
            logging.getLogger(name).setLevel(logging.WARNING)
        if not os.environ.get("AUTODL_DEBUG"):  # no SQLAlchemy traceback: the search
            quiet = logging.CRITICAL  # reports a failing store in one line
            logging.getLogger("mlflow.store.db.utils").setLevel(quiet)
        ensure_sqlite_store(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(info.study)
        self.experiment_id = (exp.experiment_id if exp else
                              self.client.create_experiment(info.study, tags={
                                  "autodl.space": info.space_name,
                                  # the UI opens on the runs table, not the GenAI overview
                                  "mlflow.experimentKind": "custom_model_development"}))
        if self.joining:
            self.parent_id = self._await_parent()
            return
        self._kill_stale_runs()
        self.parent_id = self._find_parent() or self._create_parent(info, stamp)

    def _await_parent(self, timeout: float = 120.0) -> str | None:
        """The parent run the study's `autodl search` creates (it may still be starting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self._search("tags.`autodl.role` = 'study'")
            if runs:
                parent: str = runs[0].info.run_id
                return parent
            time.sleep(1.0)
        return None

    def _kill_stale_runs(self) -> None:
        """Runs left RUNNING by a process that died end KILLED; runs of live processes
        (``autodl worker`` on this or another host) are left alone."""
        from mlflow.entities import RunTag

        from autodl.backends import owner_is_dead

        for run in self._search("attributes.status = 'RUNNING'"):
            owner = run.data.tags.get("autodl.owner")
            if owner and not owner_is_dead(owner):
                continue
            if run.data.tags.get("autodl.role") == "trial":
                self.client.log_batch(run.info.run_id, tags=[RunTag("autodl.state", "FAIL"),
                                                             RunTag("autodl.reason", "killed")])
            self.client.set_terminated(run.info.run_id, "KILLED")

    def _search(self, filter_string: str) -> list[Any]:
        return list(self.client.search_runs([self.experiment_id], filter_string,
                                            max_results=50000))

    def _find_parent(self) -> str | None:
        runs = self._search("tags.`autodl.role` = 'study'")
        if not runs:
            return None
        run_id: str = runs[0].info.run_id
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, "autodl.owner", self.owner)
        for run in self._search("tags.`autodl.role` = 'trial'"):
            number = int(run.data.tags["autodl.trial"])
            self.runs[number] = run.info.run_id
            self.states[number] = run.data.tags.get("autodl.state")
        return run_id

    def catch_up(self, trials: list[FinishedTrial]) -> None:
        """On ``--resume``: the trials an earlier run finished that this store missed (its
        disk was full, or ``--tracking-uri`` is new) or holds in another state (a run its
        killed process left, ended KILLED): recorded now, with their final metrics."""
        if self.joining:
            return
        for trial in trials:
            end = trial.end
            if self.states.get(end.number) == end.state:
                continue
            self.start_trial(end.number, dict(trial.config), {}, trial.start_ms)
            self.end_trial(end, trial.end_ms)
            self.states[end.number] = end.state

    def _create_parent(self, info: StudyInfo, stamp: int) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, start_time=stamp, run_name=info.study,
                                     tags={
            "autodl.role": "study", "autodl.study": info.study, "autodl.space": info.space_name,
            "autodl.owner": self.owner,
            "mlflow.note.content": f"autodl study over {info.data.get('name')} "
                                   f"({info.data.get('modality')}, {info.data.get('task')})",
        })
        run_id: str = run.info.run_id
        params = {"space": info.space_name, "data": info.data.get("name"),
                  "objectives": ",".join(f"{m}:{d}" for m, d in info.objectives),
                  "families": ",".join(info.families), "epochs": info.epochs,
                  **{f"settings.{k}": v for k, v in info.settings.items() if v is not None}}
        self.client.log_batch(run_id, params=[Param(k[:250], str(v)[:6000])
                                              for k, v in params.items()])
        self.client.log_text(run_id, info.space_text, "space.yaml")
        self.client.log_dict(run_id, {"settings": dict(info.settings), "data": dict(info.data),
                                      "objectives": info.objectives,
                                      "families": info.families}, "config.json")
        return run_id

    def start_trial(self, number: int, config: dict[str, Any], worker: dict[str, Any],
                     stamp: int) -> None:
        from mlflow.entities import Param

        if number in self.runs:  # a killed trial's run, found on resume: ended, not re-made
            self.open.add(number)
            return
        run = self.client.create_run(self.experiment_id, start_time=stamp,
                                     run_name=f"trial-{number}", tags={
            "mlflow.parentRunId": self.parent_id, "autodl.role": "trial",
            "autodl.trial": str(number), "autodl.state": "RUNNING",
            "autodl.family": str(config.get("family")), "autodl.device": str(worker.get("device")),
            "autodl.owner": self.owner,
        })
        self.runs[number] = run.info.run_id
        self.open.add(number)
        self.params[number] = [Param(k, v) for k, v in mlflow_params(config).items()]

    def buffer(self, number: int, epoch: int, metrics: dict[str, float], stamp: int) -> None:
        import math

        from mlflow.entities import Metric

        buf = self.buffers.setdefault(number, [])
        buf.extend(Metric(k, float(v), stamp, epoch) for k, v in metrics.items()
                   if isinstance(v, int | float) and math.isfinite(v))
        if len(buf) >= _BATCH:
            self._flush(number)

    def _flush(self, number: int, metrics: list[Any] | None = None,
               tags: list[Any] | None = None) -> None:
        """A run's pending params, buffered metrics and ``metrics``/``tags`` in as few
        ``log_batch`` calls as MLflow's limits allow (one, for a short trial: each call is a
        SQLite transaction, most of tracking's cost)."""
        params = self.params.pop(number, [])
        metrics = self.buffers.pop(number, []) + (metrics or [])
        tags = list(tags or [])
        run_id = self.runs.get(number)
        while run_id is not None and (params or metrics or tags):
            p, params = params[:100], params[100:]  # MLflow: <= 100 params and tags a call
            t, tags = tags[:100], tags[100:]
            room = _BATCH - len(p) - len(t)
            m, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)

    def tick(self) -> None:
        """Params and metrics of running trials get written (a live view in the UI)."""
        for number in set(self.buffers) | set(self.params):
            self._flush(number)

    def end_trial(self, end: TrialEnd, stamp: int) -> None:
        from mlflow.entities import Metric, RunTag

        if self.runs.get(end.number) is None:
            return
        final = {"best_epoch": end.best_epoch, "epochs_run": end.epochs_run,
                 "params_count": end.params_count, "duration_s": end.duration_s}
        if end.values and self.info:
            final.update({f"objective.{m}": v for (m, _), v in zip(self.info.objectives,
                                                                     end.values, strict=False)})
        tags = [RunTag("autodl.state", end.state)]
        if end.reason:
            tags.append(RunTag("autodl.reason", end.reason))
        if end.detail:
            tags.append(RunTag("autodl.detail", end.detail[:5000]))
        self._flush(end.number, [Metric(k, float(v), stamp, end.epochs_run)
                                 for k, v in final.items()], tags)
        run_id = self.runs[end.number]
        status = "KILLED" if end.reason == "interrupted" else _STATUS.get(end.state, "FAILED")
        self.client.set_terminated(run_id, status, end_time=stamp)
        self.open.discard(end.number)

    def end_study(self, summary: dict[str, Any]) -> None:
        self.ended = True
        from mlflow.entities import Metric, RunTag

        stamp = int(time.time() * 1000)
        metrics = {f"trials_{k}": v for k, v in summary.get("trials", {}).items()}
        best = summary.get("best")
        tags = []
        if best:
            metrics["best_value"] = best["value"]
            metrics[f"best_{summary['metric']}"] = best["value"]
            tags.append(RunTag("autodl.best_trial", str(best["trial"])))
            if best["trial"] in self.runs:
                tags.append(RunTag("autodl.best_run_id", self.runs[best["trial"]]))
        test = {f"test_{k}": v for k, v in summary.get("test", {}).items()}
        # the test metrics are the final model's: the Logged Model shows them too
        self.client.log_batch(self.parent_id, metrics=[
            Metric(k, float(v), stamp, 0) for k, v in metrics.items()] + [
            Metric(k, float(v), stamp, 0, model_id=self.model_id) for k, v in test.items()],
            tags=tags)
        self.client.log_dict(self.parent_id, summary, "summary.json")
        self._log_report()
        self.client.set_terminated(self.parent_id, "FINISHED")

    def _log_report(self) -> None:
        """The study report (``autodl report``), written by the search before study_end."""
        report = Path(self.info.out_dir) / "report.html" if self.info else None
        if report is not None and report.is_file():
            self.client.log_artifact(self.parent_id, str(report))

    def log_model(self, model: dict[str, Any]) -> None:
        """The exported final model: ``model/mlflow/`` (an MLflow PyTorch model with signature
        and input example) as an MLflow 3 Logged Model of the parent run, registered with
        ``--register``; the portable files under the parent's ``export/``."""
        directory = Path(model.get("dir", ""))
        if not model.get("files") or not directory.is_dir():
            return
        for name in ("model.onnx", "model.pt2", "model.torchscript.pt", "state_dict.pt",
                     "config.json", "preprocessor.json"):
            if (directory / name).is_file():
                self.client.log_artifact(self.parent_id, str(directory / name), "export")
        if (directory / "mlflow").is_dir():
            self.model_id = self._logged_model(directory, model)
            if self.register:
                self._register(self.model_id)

    def _logged_model(self, directory: Path, model: dict[str, Any]) -> str:
        """What ``mlflow.pytorch.log_model(name="model")`` makes, from the model the export
        already saved (no torch in this process): a Logged Model whose source run is the
        parent, loadable as ``models:/<model_id>``; ``runs:/<parent>/model`` resolves to it
        (MLflow 3 looks a run's models up by name)."""
        import shutil
        import tempfile

        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model

        config = _read_json(directory / "config.json")
        logged = self.client.create_logged_model(
            self.experiment_id, name="model", source_run_id=self.parent_id,
            model_type="autodl", params=mlflow_params({
                k: config[k] for k in ("family", "model", "optimizer", "schedule", "training")
                if k in config}),
            tags={"autodl.study": self.info.study if self.info else "",
                  "autodl.trial": str(model.get("trial")),
                  "autodl.refit": str(bool(model.get("refit"))).lower(),
                  "autodl.ensemble": str(bool(model.get("ensemble"))).lower()})
        try:
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / "model"
                shutil.copytree(directory / "mlflow", staged)
                meta = Model.load(str(staged / "MLmodel"))  # as log_model would write it
                meta.model_id, meta.run_id = logged.model_id, self.parent_id
                meta.artifact_path = logged.artifact_location
                meta.save(str(staged / "MLmodel"))
                self.client.log_model_artifacts(logged.model_id, str(staged))
            self.client.log_outputs(self.parent_id, [LoggedModelOutput(logged.model_id, 0)])
        except Exception:
            self.client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(logged.model_id, "READY")
        model_id: str = logged.model_id
        return model_id

    def _register(self, model_id: str) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)  # this process's only store
        version = mlflow.register_model(f"models:/{model_id}", self.register)
        self.registered = {"name": version.name, "version": str(version.version)}
        self.client.set_tag(self.parent_id, "autodl.registered_model",
                            f"{version.name}/{version.version}")

    def close_open_runs(self) -> None:
        """Nothing stays RUNNING: open children and an unfinished parent end KILLED."""
        if self.client is None:
            return
        self.tick()
        for number in sorted(self.open):
            self.client.set_terminated(self.runs[number], "KILLED")
        self.open.clear()
        if self.parent_id and not self.ended and not self.joining:
            self.client.set_terminated(self.parent_id, "KILLED")


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data
