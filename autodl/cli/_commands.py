"""One function per command: ``cmd_<name>(args) -> exit code``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from autodl.errors import UsageError

__all__ = ["cmd_best", "cmd_datasets", "cmd_doctor", "cmd_export", "cmd_predict", "cmd_report",
           "cmd_search", "cmd_spaces", "cmd_ui"]


def _console() -> Console:
    return Console(stderr=True)


def cmd_search(args: argparse.Namespace) -> int:
    from autodl.runner import run_search
    from autodl.settings import SearchSettings
    from autodl.ui import ProgressDisplay

    settings = SearchSettings(
        space=args.space, data=args.data, target=args.target, text_column=args.text_column,
        task=args.task,
        trials=args.trials, epochs=args.epochs, timeout=args.timeout, backend=args.backend,
        sampler=args.sampler, pruner=args.pruner, study=args.study, storage=args.storage,
        tracking_uri=args.tracking_uri, tracking=not args.no_tracking, workers=args.workers,
        devices=args.devices, trials_per_device=args.trials_per_device, seed=args.seed,
        out=args.out, resume=args.resume, export=not args.no_export, register=args.register,
        cv=args.cv, holdout=args.holdout, refit=not args.no_refit,
        ensemble=args.ensemble,
        max_consecutive_failures=args.max_failures, quiet=args.quiet or args.json,
        trial_memory_gb=args.trial_memory_gb, max_yaml_mb=args.max_yaml_mb,
        **_speed_settings(args),
        ray_address=args.ray_address, ray_scheduler=args.ray_scheduler,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
    )
    console = _console()
    listeners = [] if settings.quiet else [ProgressDisplay(console)]
    result = run_search(settings, listeners)
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        _print_result(console, result.summary, settings.storage)
        console.print(f"summary: {result.out_dir / 'summary.json'}")
    return 0 if result.summary.get("best") else 1


def _speed_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"amp": not args.no_amp, "tf32": not args.no_tf32,
            "cudnn_benchmark": not args.no_cudnn_benchmark, "batch_trials": args.batch_trials}


def cmd_worker(args: argparse.Namespace) -> int:
    from autodl.join import join_study
    from autodl.settings import SearchSettings, check_name
    from autodl.ui import ProgressDisplay

    check_name(args.study, "study")
    settings = SearchSettings(
        data=args.data, sampler=args.sampler, pruner=args.pruner, storage=args.storage,
        tracking_uri=args.tracking_uri,
        tracking=not args.no_tracking, workers=args.workers, devices=args.devices,
        trials_per_device=args.trials_per_device, out=args.out, quiet=args.quiet,
        max_yaml_mb=args.max_yaml_mb, **_speed_settings(args)).check()
    listeners = [] if args.quiet else [ProgressDisplay(_console())]
    ended = join_study(args.study, settings, listeners, wait=args.wait)
    states = [e.state for e in ended]
    print(f"worker: ran {len(ended)} trials of study {args.study} ({states.count('COMPLETE')} "
          f"complete, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed)")
    return 0


def _print_result(console: Console, summary: dict[str, Any], storage: str | None) -> None:
    from autodl.summary import top_trials
    from autodl.ui import print_summary

    study = _load_study(summary["study"], storage)
    print_summary(console, summary, top_trials(study, 5))


def _load_study(name: str | None, storage: str | None) -> Any:
    import optuna

    from autodl.backends import DEFAULT_STORAGE, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(storage)
    summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    names = [s.study_name for s in sorted(
        summaries, key=lambda s: s.datetime_start.timestamp() if s.datetime_start else 0)]
    if not names:
        raise UsageError(f"no studies in {storage or DEFAULT_STORAGE}", key="study")
    if name is None:
        name = names[-1]
    if name not in names:
        raise UsageError(f"no study {name!r} in {storage or DEFAULT_STORAGE}; studies: "
                         f"{', '.join(names[-10:])}", key="study")
    return optuna.load_study(study_name=name, storage=store)


def cmd_best(args: argparse.Namespace) -> int:
    from autodl.summary import summarize, top_trials
    from autodl.ui import print_summary

    study = _load_study(args.study, args.storage)
    summary = summarize(study, storage=args.storage or "autodl.journal")
    saved = _saved_summary(study)
    if saved:
        summary["test"] = saved.get("test", {})
        summary["mlflow"] = saved.get("mlflow", {})
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        console = Console()
        console.print(f"study [cyan]{study.study_name}[/]")
        print_summary(console, summary, top_trials(study, 5))
        if summary["best"]:
            console.print_json(json.dumps(summary["best"]["params"]))
    return 0 if summary["best"] else 1


def _saved_summary(study: Any) -> dict[str, Any] | None:
    from autodl.backends import OUT_DIR, study_out_dir

    path = study_out_dir(study) / "summary.json" if study.user_attrs.get(OUT_DIR) else None
    if path and path.is_file():
        summary: dict[str, Any] = json.loads(path.read_text())
        return summary
    return None


def cmd_spaces(args: argparse.Namespace) -> int:
    from autodl.space import list_spaces, load_space

    if args.spaces_command == "list":
        for name, description in list_spaces():
            print(f"{name:<16} {description}")
        return 0
    if args.spaces_command == "show":
        sys.stdout.write(load_space(args.name).source_text)
        return 0
    from autodl.validate import validate_space

    for line in validate_space(args.file, data=args.data, target=args.target,
                               text_column=args.text_column, max_yaml_mb=args.max_yaml_mb):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autodl.backends import study_out_dir
    from autodl.export import FORMATS, export_study
    from autodl.selection import final_model_dir
    from autodl.summary import best_trial

    study = _load_study(args.study, args.storage)
    formats = [f.strip() for item in (args.format or [",".join(FORMATS)])
               for f in item.split(",") if f.strip()]
    out_dir = study_out_dir(study)
    trial = args.trial if args.trial is not None else getattr(best_trial(study), "number", None)
    if trial is None:
        raise UsageError(f"study {study.study_name!r} has no completed trial to export",
                         key="study")
    dest = Path(args.out) if args.out else out_dir / "model"
    result = export_study(out_dir, trial, dest, formats, args.trust_pickle,
                          weights_dir=None if args.trial is not None else final_model_dir(
                              out_dir, trial))
    for fmt, path in result.files.items():
        print(f"{fmt:<12} {dest / path}")
    for fmt, why in result.failed.items():
        print(f"{fmt:<12} FAILED: {why}", file=sys.stderr)
    return 1 if result.failed else 0


def cmd_predict(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from autodl.data import load_features
    from autodl.export import predict, text_column, write_predictions

    features = load_features(args.data, args.target, text_column(Path(args.model_dir)))
    result = predict(Path(args.model_dir), features, trust_pickle=args.trust_pickle)
    classes = json.loads((Path(args.model_dir) / "config.json").read_text()).get("classes")
    if args.out:
        write_predictions(result, Path(args.out), classes)
        print(f"{len(next(iter(result.values())))} predictions -> {args.out}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.csv"
        write_predictions(result, path, classes)
        sys.stdout.write(path.read_text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autodl.report import write_report

    out = Path(args.out) if args.out else None
    path = write_report(args.study, args.storage, out, args.tracking_uri,
                        mlflow_ui=args.mlflow_ui)
    print(f"report: {path}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from autodl.tracking import default_tracking_uri
    from autodl.webui import run_ui

    if args.optuna:
        from autodl.webui import run_optuna_dashboard

        return run_optuna_dashboard(args.storage, args.host, args.port, args.study,
                                    args.expose)
    return run_ui(args.tracking_uri or default_tracking_uri(), args.host, args.port or 5000,
                  args.study, args.expose)


def cmd_doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autodl.doctor import doctor_journal

    if "://" in args.storage:
        raise UsageError("autodl doctor checks journal files; check a database with its own "
                         "tools (e.g. sqlite3 FILE 'PRAGMA integrity_check')", key="storage")
    for line in doctor_journal(Path(args.storage)).lines_out():
        print(line)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from autodl.data import list_datasets

    for name, description in list_datasets():
        print(f"{name:<22} {description}")
    return 0
