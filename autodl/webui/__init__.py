"""The web UIs autodl starts on 127.0.0.1: MLflow's (``autodl ui``) and optuna-dashboard
(``autodl ui --optuna``). Not the terminal display, which is ``autodl.ui``."""

from autodl.webui._mlflow_ui import experiment_url, mlflow_server_command, run_ui
from autodl.webui._optuna_dashboard import run_optuna_dashboard

__all__ = ["experiment_url", "mlflow_server_command", "run_optuna_dashboard", "run_ui"]
