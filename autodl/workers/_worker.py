"""The worker process: loads the data once onto its device, then trains trial after trial.

It speaks the typed messages of ``autodl.workers._messages`` over a pipe: ``LoadData``
once, then one request at a time (a trial, a group of trials, a refit, an ensemble step, a
test, an export) until ``Stop``; each epoch of a trial is an ``EpochReport`` answered by
an ``EpochAnswer`` (or ``Stop``: checkpoint and end).
"""

from __future__ import annotations

import contextlib
import os
import signal
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from autodl.workers._messages import (
    AssembleEnsemble,
    ChooseEnsemble,
    Done,
    EnsembleAssembled,
    EnsembleChosen,
    EpochAnswer,
    EpochReport,
    Exported,
    ExportModel,
    LoadData,
    Ready,
    Refit,
    Refitted,
    RunGroup,
    RunTrial,
    Tested,
    TestModel,
)

__all__ = ["export_trial", "set_backends", "test_metrics", "worker_main"]


def worker_main(
    conn: Connection, worker_id: int, device: str, threads: int,
    cores: tuple[int, ...] = (), runtime: dict[str, Any] | None = None,
) -> None:
    """Entry point of a spawned worker: import torch and warm up, then wait for
    ``LoadData``. SIGINT is left to the parent, which decides."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cores and hasattr(os, "sched_setaffinity"):  # its own cores: no fighting over them
        os.sched_setaffinity(0, cores)
    import torch

    torch.set_num_threads(max(1, threads))
    set_backends(torch, device, runtime or {})
    _warm_up(torch)
    try:
        msg = conn.recv()
    except EOFError:
        os._exit(0)
    if not isinstance(msg, LoadData):
        os._exit(0)
    # the pool may have re-planned threads and cores since the spawn
    torch.set_num_threads(max(1, msg.threads))
    if msg.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, msg.cores)
    cores = tuple(msg.cores)
    from autodl.data import PreparedData
    from autodl.train import TensorData

    data = TensorData.from_prepared(PreparedData.load(msg.path), device)
    conn.send(Ready(worker=worker_id, pid=os.getpid(), device=device,
                    threads=torch.get_num_threads(), cores=list(cores)))
    _serve(conn, data, Path(msg.out_dir))
    os._exit(0)  # nothing left to flush: skip torch's slow interpreter teardown


def _warm_up(torch: Any) -> None:
    """Pay the first trial's one-off costs (the trainer's modules, the first backward pass
    and optimizer kernel) while the parent still prepares the data. autodl's optimizers
    never import ``torch._dynamo`` (torch.optim's do: about 2 s)."""
    import autodl.workers._group
    import autodl.workers._trial  # noqa: F401
    from autodl.models import list_families
    from autodl.train import build_optimizer

    with contextlib.suppress(Exception):  # a broken plugin: the search reports it itself
        list_families()  # loads the installed plugins' families (scans every package)
    model = torch.nn.Linear(4, 2)
    optimizer = build_optimizer(model, {"name": "adamw", "lr": 1e-3})
    torch.nn.functional.cross_entropy(model(torch.zeros(2, 4)), torch.zeros(2).long()
                                      ).backward()
    optimizer.step()


def set_backends(torch: Any, device: str, runtime: dict[str, Any]) -> None:
    """TF32 matmuls/convolutions and cuDNN autotuning on GPUs, unless turned off. On CPU,
    denormal floats flush to zero: zero-padded series (UCR's equal-length sets) made a
    1-D CNN's epoch 6x slower through denormal gradients (PickupGestureWiimoteZ: 7.5 s
    against 1.3 s on random data of the same shape); GPUs flush them in most kernels too."""
    if not device.startswith("cuda"):
        torch.set_flush_denormal(True)
        return
    tf32 = bool(runtime.get("tf32", True))
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = bool(runtime.get("cudnn_benchmark", True))
    torch.cuda.set_device(torch.device(device))


def _serve(conn: Connection, data: Any, out_dir: Path) -> None:
    from autodl.workers._group import run_group
    from autodl.workers._trial import run_trial

    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        match msg:
            case RunTrial(spec):
                ask = partial(_ask_parent, conn, spec["number"])
                conn.send(Done((run_trial(spec, data, out_dir, ask),)))
            case RunGroup(specs):
                for outcomes in run_group(specs, data, out_dir, partial(_ask_parent, conn)):
                    conn.send(Done(tuple(outcomes)))
            case Refit(spec):
                from autodl.workers._refit import run_refit

                conn.send(Refitted(spec["number"], run_refit(spec, data, out_dir)))
            case ChooseEnsemble(spec):
                conn.send(EnsembleChosen(0, _ensemble_step(True, spec, data, out_dir)))
            case AssembleEnsemble(spec):
                conn.send(EnsembleAssembled(0, _ensemble_step(False, spec, data, out_dir)))
            case TestModel(number, config, weights):
                conn.send(Tested(number, test_metrics(data, out_dir, number, config, weights)))
            case ExportModel(number, dest, formats, weights_dir):
                conn.send(Exported(number, export_trial(out_dir, number, dest, formats,
                                                        weights_dir)))
            case _:  # Stop, or anything this worker does not know
                return


def _ensemble_step(choose: bool, spec: dict[str, Any], data: Any, out_dir: Path
                   ) -> dict[str, Any]:
    """Choose or write an ensemble; a problem is reported (the best single model is used
    then), never raised."""
    from autodl.workers._ensemble import assemble_ensemble, choose_ensemble

    try:
        return (choose_ensemble if choose else assemble_ensemble)(
            spec, data, out_dir)
    except Exception as exc:
        return {"chosen": False, "error": f"{type(exc).__name__}: {exc}"}


def _ask_parent(conn: Connection, number: int, epoch: int, metrics: dict[str, float]
                ) -> bool | str:
    """Report trial ``number``'s epoch; the answer is whether to prune it, or ``"finish"``
    (the search's time is up: end it now with its best epoch so far)."""
    try:
        conn.send(EpochReport(number, epoch, metrics))
        reply = conn.recv()
    except (BrokenPipeError, EOFError, ConnectionError):
        # the search process is gone (kill -9): leave everything on disk as it is, so
        # the resume continues from this trial's checkpoint
        os._exit(0)
    from autodl.train import FINISH, TrialStopped

    if not isinstance(reply, EpochAnswer):  # Stop: the search is stopping; checkpoint
        raise TrialStopped
    if reply.action == "finish":
        return FINISH
    return reply.action == "prune"


def export_trial(out_dir: Path, number: int, dest: str, formats: list[str],
                 weights_dir: str | None = None) -> dict[str, Any]:
    """Export the trial's best-epoch weights (or the refit's, in ``weights_dir``); an
    export problem is reported, not raised."""
    from autodl.export import export_study

    try:
        return export_study(out_dir, number, Path(dest), formats,
                            weights_dir=None if weights_dir is None else Path(weights_dir)
                            ).summary()
    except Exception as exc:  # nothing could be written (no weights, unreadable data)
        return {"dir": dest, "files": {}, "error": f"{type(exc).__name__}: {exc}",
                "failed": dict.fromkeys(formats, f"{type(exc).__name__}: {exc}")}


def test_metrics(data: Any, out_dir: Path, number: int, config: dict[str, Any],
                  weights: str | None = None) -> dict[str, float]:
    """The best trial's weights (or the refit's, ``weights``) on the held-out test split
    (used once, never for selection)."""
    import torch

    from autodl.models import create_model
    from autodl.train import evaluate
    from autodl.workers._trial import weights_path

    if data.X_test is None:
        return {}
    model = create_model(config["family"], config["model"], data.input_shape, data.n_outputs,
                         data.modality).to(data.device)
    path = Path(weights) if weights else weights_path(out_dir, number)
    state = torch.load(path, map_location=data.device, weights_only=True)
    model.load_state_dict(state)
    return evaluate(model, data, data.X_test, data.y_test)
