"""What runs inside Ray's worker processes: one trial of the existing training code.

``train_trial`` is Ray Tune's function trainable. It rebuilds the nested config from the
trial's flat params, trains it with ``autodl.workers._trial.run_trial`` (the same code the
Optuna backend's workers run) and sends each epoch to Tune with ``ray.tune.report``:

- every epoch before the last: ``{"epoch", "objective", "metrics": {...}, "autodl_node"}``, with the
  trainer's resume checkpoint attached when it has just written one (PBT exploits, HyperBand
  pauses and ``Tuner.restore`` continue from it);
- at the end: the same keys plus ``autodl_outcome``, run_trial's outcome as JSON; the
  budget's last epoch is sent only there, so a trial that ran its whole budget always
  ends with its outcome, whatever a scheduler decides on that result.

The report callback never asks to prune: a Tune scheduler stops a trial by stopping its
actor (``sys.exit`` inside ``tune.report``), so a trial without an outcome was stopped early.
Weights land in ``<out>/trials/ray-<trial id>/``; the driver renames that directory to the
trial's number when the trial ends. Paths are absolute: Tune changes the working directory.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autodl.workers import Outcome, TrialSpec

__all__ = ["RayJob", "evaluate_best", "train_trial", "trial_dir_name"]

_DATA: dict[tuple[str, str], Any] = {}  # (data path, device) -> TensorData, per process
_COSTS = ("params", "latency_ms")


@dataclass(frozen=True)
class RayJob:
    """What every trial of one search shares (sent once through Ray's object store)."""

    space: Any
    data_path: str
    out_dir: str
    epochs: int
    objectives: list[tuple[str, str]]
    seed_base: int
    checkpoint_every_s: float
    cpus: float
    amp: bool = True  # --no-amp
    runtime: dict[str, bool] = field(default_factory=dict)  # tf32, cudnn_benchmark on GPUs

    @property
    def prune_metric(self) -> str:
        metric = self.objectives[0][0]
        return "loss" if metric in _COSTS else metric

    def seed_for(self, params: dict[str, Any]) -> int:
        """A trial's seed from its params: Ray trials have no number while they run, and a
        seeded search must train the same config the same way."""
        digest = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
        return (self.seed_base + digest) % (2**31 - 1)


def trial_dir_name(trial_id: str) -> str:
    return f"ray-{trial_id}"


def train_trial(config: dict[str, Any], job: RayJob) -> None:
    """Ray Tune function trainable: one trial, reported epoch by epoch, then its outcome."""
    from ray import tune

    from autodl.backends.ray._space import resolve_trial
    from autodl.train import remove_checkpoint
    from autodl.workers import run_trial

    nested, params, _ = resolve_trial(job.space, config)
    name = trial_dir_name(tune.get_context().get_trial_id())
    trial_dir = Path(job.out_dir) / "trials" / name
    remove_checkpoint(trial_dir)  # a stale one from before a pause must not be re-reported
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "config.json").write_text(json.dumps(nested, indent=2, sort_keys=True))
    spec: TrialSpec = {"number": name, "config": nested, "epochs": job.epochs,
                            "objectives": job.objectives, "seed": job.seed_for(params),
                            "checkpoint_every_s": job.checkpoint_every_s, "amp": job.amp}
    if _restore(tune.get_checkpoint(), trial_dir, nested):
        spec["resume_from"] = str(trial_dir)
    reporter = _Reporter(job, trial_dir)
    outcome = run_trial(spec, _data(job), Path(job.out_dir), reporter)
    tune.report(reporter.final(outcome))


def _data(job: RayJob) -> Any:
    """The search's tensors on this worker's device, loaded once per process (Tune reuses
    actors across trials)."""
    import ray
    import torch

    from autodl.data import PreparedData
    from autodl.train import TensorData
    from autodl.workers import set_backends

    device = "cuda:0" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
    torch.set_num_threads(max(1, int(job.cpus)))
    key = (job.data_path, device)
    if key not in _DATA:
        _DATA.clear()
        set_backends(torch, device, job.runtime)
        _DATA[key] = TensorData.from_prepared(PreparedData.load(job.data_path), device)
    return _DATA[key]


class _Reporter:
    """run_trial's ``report(epoch, metrics) -> prune?``, sending each epoch to Tune."""

    def __init__(self, job: RayJob, trial_dir: Path) -> None:
        import ray

        self.job, self.trial_dir = job, trial_dir
        metric, direction = job.objectives[0]
        self.key = None if metric in _COSTS else f"val_{metric}"
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.best = math.nan
        self.last: dict[str, Any] = {}
        self.node = ray.util.get_node_ip_address()

    def __call__(self, epoch: int, metrics: dict[str, float]) -> bool:
        from ray import tune

        value = float(metrics.get(self.key, math.nan)) if self.key else math.nan
        if math.isfinite(value) and not self.sign * self.best >= self.sign * value:
            self.best = value
        self.last = {"epoch": epoch, "objective": self.best, "metrics": dict(metrics),
                     "autodl_node": self.node}
        if epoch < self.job.epochs:
            tune.report(self.last, checkpoint=self._fresh_checkpoint(epoch))
        # the budget's last epoch goes out with the outcome (``final``): a scheduler that
        # stopped the trial on it would otherwise end a trial that ran its whole budget
        # without its outcome, as PRUNED
        return False

    def _fresh_checkpoint(self, epoch: int) -> Any:
        """The trainer's resume checkpoint, when it was written after this very epoch."""
        from ray import tune

        from autodl.train import SIDECAR

        try:
            written = json.loads((self.trial_dir / SIDECAR).read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return None
        return tune.Checkpoint.from_directory(str(self.trial_dir)) if written == epoch else None

    def final(self, outcome: Outcome) -> dict[str, Any]:
        """The last report: the outcome, plus the keys schedulers and the searcher read."""
        values = outcome.get("values") or [math.nan] * len(self.job.objectives)
        result = {"epoch": int(outcome.get("epochs_run") or 0),
                  "metrics": {f"val_{self.job.prune_metric}": math.nan}, **self.last,
                  "objective": values[0], "autodl_node": self.node,
                  "autodl_outcome": json.dumps(outcome, default=str)}
        result.update({f"objective_{i}": v for i, v in enumerate(values)})
        return result


def _restore(checkpoint: Any, trial_dir: Path, config: dict[str, Any]) -> bool:
    """Continue from Tune's checkpoint (a PBT exploit, a HyperBand unpause, a restored
    experiment), with this trial's optimizer values applied to it."""
    if checkpoint is None:
        return False
    import torch

    from autodl.train import CHECKPOINT

    with checkpoint.as_directory() as src:
        path = Path(src)
        if not (path / CHECKPOINT).is_file():
            return False
        state = torch.load(path / CHECKPOINT, map_location="cpu", weights_only=True)
        saved = path / "config.json"
        old = json.loads(saved.read_text()) if saved.is_file() else config
    apply_optimizer_values(state, old["optimizer"], config["optimizer"])
    torch.save(state, trial_dir / CHECKPOINT)
    return True


def apply_optimizer_values(state: dict[str, Any], old: dict[str, Any],
                           new: dict[str, Any]) -> None:
    """PBT mutated ``new`` from the values the checkpoint trained with; loading the
    checkpoint's optimizer and schedule would silently bring the old values back. The
    learning rate is rescaled where the schedule keeps it (so warm-up and decay go on)."""
    if old == new:
        return
    scale = float(new["lr"]) / float(old["lr"]) if float(old.get("lr") or 0) else 1.0
    for group in state["optimizer"]["param_groups"]:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= scale
        for key, value in new.items():
            if key in group and key != "lr" and isinstance(value, int | float):
                group[key] = value
        if "betas" in group:
            group["betas"] = (float(new.get("beta1", group["betas"][0])),
                              float(new.get("beta2", group["betas"][1])))
    schedule = state["scheduler"]
    for key in ("base_lrs", "_last_lr"):
        if key in schedule:
            schedule[key] = [v * scale for v in schedule[key]]


def evaluate_best(job: RayJob, number: int, config: dict[str, Any], dest: str | None,
                  test: bool) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Ray task: the best trial on the test split and/or its export, through the same code
    the Optuna backend's workers run."""
    from autodl.export import FORMATS
    from autodl.workers import export_trial, test_metrics

    out_dir = Path(job.out_dir)
    metrics = test_metrics(_data(job), out_dir, number, config) if test else {}
    model = export_trial(out_dir, number, dest, list(FORMATS)) if dest else None
    return metrics, model
