"""``autodl ui``: the MLflow UI over this project's tracking store, on loopback."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from autodl._group import run_group
from autodl.errors import UsageError

__all__ = ["LOOPBACK", "experiment_url", "mlflow_server_command"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def mlflow_server_command(tracking_uri: str, host: str, port: int, expose: bool = False,
                          artifacts: str | None = None) -> list[str]:
    """The ``mlflow server`` command line. Binding beyond loopback needs ``expose``."""
    if host not in LOOPBACK and not expose:
        raise UsageError(f"--host {host}: the UI would be reachable from other machines and "
                         "show the whole store; pass --expose to do it on purpose",
                         key="host")
    if "://" not in tracking_uri:
        raise UsageError(f"--tracking-uri {tracking_uri!r}: expected a URI such as "
                         "sqlite:///mlflow.db", key="tracking_uri")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    if artifacts:
        cmd += ["--default-artifact-root", str(Path(artifacts).resolve().as_uri())]
    return cmd


def experiment_url(tracking_uri: str, host: str, port: int, study: str | None) -> str:
    """The UI's address, on the study's experiment when it exists in the store."""
    base = f"http://{'[::1]' if host == '::1' else host}:{port}/"
    if study is None:
        return base
    from mlflow import MlflowClient

    exp = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(study)
    if exp is None:
        raise UsageError(f"no MLflow experiment {study!r} in {tracking_uri}", key="study")
    return f"{base}#/experiments/{exp.experiment_id}/runs"


def run_ui(tracking_uri: str, host: str, port: int, study: str | None, expose: bool) -> int:
    cmd = mlflow_server_command(tracking_uri, host, port, expose)
    if host not in LOOPBACK:
        print(f"warning: serving the MLflow store {tracking_uri} on {host}: anyone who can "
              "reach this address can read every run and artifact", file=sys.stderr)
    url = experiment_url(tracking_uri, host, port, study)
    print(f"MLflow UI: {url}  (Ctrl-C to stop)", flush=True)
    # Ctrl-C stops it even when it started with SIGINT ignored (a shell's background job),
    # as optuna-dashboard's server does (autodl.webui._optuna_dashboard)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_group(cmd)  # the server's own workers end with it (and with autodl)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, previous)
