"""The argument parser (its names are the README's command reference). Importing this is cheap."""

from __future__ import annotations

import argparse
from typing import TypeAlias

__all__ = ["build_parser"]

_TRUST = ("load weight files that hold pickled objects (unpickling can run code: only for "
          "files you trust); by default only plain tensors load")


# what add_subparsers() returns (generic in typeshed only: a string, not run)
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _search(sub: _Commands) -> None:
    p = sub.add_parser("search", help="run a hyperparameter search",
                       description="Search a YAML space (a path or a shipped name, e.g. "
                       "quickstart) on --data; every trial is logged, the best model exported.")
    p.add_argument("space", metavar="SPACE", help="YAML file, or the name of a shipped space")
    p.add_argument("--data", metavar="SPEC",
                   help="digits, iris, wine, breast_cancer, diabetes, synthetic:..., or a "
                   ".npz/.csv/.parquet file (default: the space's defaults.data)")
    p.add_argument("--target", metavar="COLUMN", help="target column of a CSV/Parquet file")
    p.add_argument("--text-column", metavar="COLUMN",
                   help="text classification: the table's text column, tokenised with the "
                   "backbone's tokenizer (or ?tokenizer=DIR; ?max_length=N, default 128)")
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto")
    p.add_argument("--trials", type=int,
                   help="total trials in the study, across resumes (default: the space's, "
                   "else 20; none with --timeout alone)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="wall-clock budget; no trial starts after it (with --trials: "
                   "whichever comes first)")
    p.add_argument("--epochs", type=int, help="maximum epochs per trial")
    p.add_argument("--backend", default="optuna", choices=["optuna", "ray"])
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="--backend ray: join this Ray cluster (default: start a local one)")
    p.add_argument("--ray-scheduler", default="asha",
                   choices=["asha", "hyperband", "pbt", "median"],
                   help="--backend ray: Tune scheduler that stops or perturbs trials")
    p.add_argument("--cpus-per-trial", type=float, metavar="N",
                   help="--backend ray: CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, metavar="N",
                   help="--backend ray: GPUs per trial, fractions share a GPU (default: "
                   "1/--trials-per-device when the cluster has GPUs)")
    p.add_argument("--sampler", help="tpe (default), random, cmaes, gp, qmc, grid, nsga2")
    p.add_argument("--pruner",
                   help="hyperband (default), successive_halving, median, percentile, none")
    p.add_argument("--study", metavar="NAME", help="study name (default: SPACE-<timestamp>)")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage: a journal file (default ./autodl.journal), "
                   "sqlite:///FILE or postgresql://...")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: 1 per GPU slot; on CPU, 1 single-threaded "
                   "worker per core, or 1 with every core for --seed (repeatable order) and "
                   "pretrained backbones)")
    p.add_argument("--devices", default="auto", help="auto, cpu, or GPU indices like 0,1")
    p.add_argument("--trials-per-device", type=int, default=1, metavar="K",
                   help="concurrent trials per GPU")
    _speed_switches(p)
    p.add_argument("--seed", type=int, help="makes a CPU run repeatable")
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/<study>/)")
    p.add_argument("--resume", action="store_true", help="continue the study named by --study")
    p.add_argument("--no-export", action="store_true", help="do not export the best model")
    protocol = p.add_mutually_exclusive_group()
    protocol.add_argument("--cv", type=int, metavar="K",
                          help="score every trial by stratified K-fold cross-validation over "
                          "train + validation (default: 5-fold below 1000 samples, else one "
                          "validation split)")
    protocol.add_argument("--holdout", action="store_true",
                          help="score trials on one validation split whatever the data size")
    p.add_argument("--no-refit", action="store_true",
                   help="test and export the best trial's own weights instead of retraining "
                   "its configuration on train + validation")
    p.add_argument("--ensemble", type=int, metavar="N",
                   help="greedy ensemble selection rounds over the best trials' held-out "
                   "predictions (default 20); the ensemble is exported when it beats the "
                   "best single model. 0: no ensemble")
    p.add_argument("--register", metavar="NAME",
                   help="register the best model in the MLflow Model Registry as NAME")
    p.add_argument("--trial-memory-gb", type=float, metavar="GB",
                   help="fail a trial (reason oom) before training when its weights, gradients "
                   "and optimizer state need more than GB (default: the device's free memory)")
    p.add_argument("--max-failures", type=int, default=5, metavar="N",
                   help="stop after N trials fail in a row (default 5)")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.add_argument("--json", action="store_true", help="print summary.json on stdout")
    _max_yaml(p)


def _max_yaml(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-yaml-mb", type=float, default=1.0, metavar="MB",
                   help="refuse a space file larger than MB before parsing it (default 1)")


def _speed_switches(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-amp", action="store_true",
                   help="GPUs: train in fp32 (default: bf16 autocast, fp16 where no bf16)")
    p.add_argument("--no-tf32", action="store_true", help="GPUs: no TF32 matmuls/convolutions")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="GPUs: no cuDNN autotuning (more repeatable, can be slower)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch-trials", type=int, metavar="K",
                       help="train up to K MLP trials of one architecture together in one "
                       "worker, as one stacked model (default: up to 8 on CPU workers, a "
                       "quarter of --trials at most; off on GPUs)")
    batch.add_argument("--no-batch-trials", action="store_const", const=1,
                       dest="batch_trials", help="train every trial on its own")


def _worker(sub: _Commands) -> None:
    p = sub.add_parser("worker", help="join a running study (from this or another machine)",
                       description="Run the remaining trials of a study started by `autodl "
                       "search` in a storage every machine reaches (e.g. postgresql://...). "
                       "The budget stays exact however many workers join.")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--storage", metavar="URL", help="the study's storage (default "
                   "./autodl.journal)")
    p.add_argument("--data", metavar="SPEC", help="where the data is on this machine "
                   "(default: the study's data spec)")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: 1 per GPU slot; on CPU, 1 single-threaded "
                   "worker per core, or 1 with every core for --seed (repeatable order) and "
                   "pretrained backbones)")
    p.add_argument("--devices", default="auto", help="auto, cpu, or GPU indices like 0,1")
    p.add_argument("--trials-per-device", type=int, default=1, metavar="K")
    _speed_switches(p)
    p.add_argument("--sampler", help="this worker's sampler (default: the study's; needed when "
                   "the study was searched with a sampler object from Python)")
    p.add_argument("--pruner", help="this worker's pruner (default: the study's)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--out", metavar="DIR", help="trial weights (default runs/<study>/)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for the study to be created")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    _max_yaml(p)  # the study's space, as the search was allowed to read it


def _best(sub: _Commands) -> None:
    p = sub.add_parser("best", help="best trial of a study: params and metrics")
    p.add_argument("study", metavar="STUDY", nargs="?", help="study name (default: the latest)")
    p.add_argument("--storage", metavar="URL")
    p.add_argument("--json", action="store_true")


def _spaces(sub: _Commands) -> None:
    p = sub.add_parser("spaces", help="list, show or validate search spaces")
    s = p.add_subparsers(dest="spaces_command", required=True, metavar="COMMAND")
    s.add_parser("list", help="shipped search spaces")
    show = s.add_parser("show", help="print a space's YAML")
    show.add_argument("name", metavar="NAME")
    val = s.add_parser("validate",
                       help="check a space; build one model per family and run one batch")
    val.add_argument("file", metavar="FILE")
    val.add_argument("--data", metavar="SPEC", help="data to validate against")
    val.add_argument("--target", metavar="COLUMN")
    val.add_argument("--text-column", metavar="COLUMN", help="a table's text column")
    _max_yaml(val)


def _datasets(sub: _Commands) -> None:
    p = sub.add_parser("datasets", help="built-in datasets")
    s = p.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")
    s.add_parser("list", help="built-in and synthetic datasets")


def _export(sub: _Commands) -> None:
    p = sub.add_parser("export", help="export a study's best model (no retraining)")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--format", action="append", metavar="FORMAT",
                   help="onnx, torchscript, pt2, state_dict or mlflow; repeat or comma-"
                   "separate (default: all)")
    p.add_argument("--out", metavar="DIR", help="default: runs/<study>/model")
    p.add_argument("--trial", type=int, metavar="N", help="a trial other than the best")
    p.add_argument("--storage", metavar="URL")
    p.add_argument("--trust-pickle", action="store_true", help=_TRUST)


def _predict(sub: _Commands) -> None:
    p = sub.add_parser("predict", help="predict with an exported model directory")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--data", metavar="SPEC", required=True)
    p.add_argument("--target", metavar="COLUMN", help="a table's target column, dropped")
    p.add_argument("--out", metavar="FILE", help=".csv or .npz (default: CSV on stdout)")
    p.add_argument("--trust-pickle", action="store_true", help=_TRUST)


def _report(sub: _Commands) -> None:
    p = sub.add_parser("report", help="a study's dashboard as one self-contained HTML file",
                       description="What won, by how much and what mattered, with the "
                       "study's plots and links to its MLflow runs; opens with no network.")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--out", metavar="FILE.html", help="default: runs/<study>/report.html")
    p.add_argument("--storage", metavar="URL", help="default ./autodl.journal")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow store for run links and "
                   "curves (default: the one the search used, else sqlite:///mlflow.db)")
    p.add_argument("--mlflow-ui", metavar="URL", default="http://127.0.0.1:5000",
                   help="base URL of the MLflow UI the run links open (default %(default)s)")


def _ui(sub: _Commands) -> None:
    p = sub.add_parser("ui", help="MLflow UI on 127.0.0.1 over this project's store")
    p.add_argument("study", metavar="STUDY", nargs="?", help="print the URL of its experiment")
    p.add_argument("--tracking-uri", metavar="URI", help="default: sqlite:///mlflow.db here")
    p.add_argument("--optuna", action="store_true",
                   help="optuna-dashboard over the study storage instead of the MLflow UI "
                   "(pip install 'autodl[dashboard]')")
    p.add_argument("--storage", metavar="URL", help="--optuna: default ./autodl.journal")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, help="default 5000 (MLflow), 8080 (--optuna)")
    p.add_argument("--expose", action="store_true",
                   help="allow a --host other than loopback (everyone who can reach it sees "
                   "the whole store)")


def _doctor(sub: _Commands) -> None:
    p = sub.add_parser("doctor", help="check a journal file; salvage a corrupt one",
                       description="Check that every record of a journal file reads. When "
                       "one is corrupt, write every intact record to a new journal in its "
                       "place (the original is kept as FILE.corrupt-<time>.bak) and say what "
                       "was lost, so the studies in it can be resumed.")
    p.add_argument("storage", metavar="STORAGE", nargs="?", default="autodl.journal",
                   help="the journal file (default ./autodl.journal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodl",
        description="Hyperparameter search and AutoML for PyTorch: one YAML space, Optuna "
        "(or Ray Tune) trials on your GPUs or CPU cores, every trial in MLflow.",
    )
    parser.add_argument("--version", action="store_true", help="print the version")
    parser.add_argument("--debug", action="store_true", help=_DEBUG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_search, _worker, _best, _export, _predict, _report, _spaces, _datasets, _ui,
                _doctor):
        add(sub)
    for command in sub.choices.values():  # `autodl search ... --debug` too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=_DEBUG)
    return parser


_DEBUG = "print the traceback of an error (storage, tracking, bad input)"
