"""The epoch loop for K stacked trials of one architecture (see ``autodl.train.batched``).

Each member keeps what a sequential ``Trainer`` keeps (its seed's initial weights and batch
order, its own schedule, history, best epoch and best-epoch weights) and goes through the
same end-of-epoch checks in the same order: non-finite guard, best checkpoint, early
stopping, report (pruning). A member that ends leaves the stacked state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from autodl.models import create_model, get_family, resolve_params
from autodl.train._augment import augment_batch
from autodl.train._callbacks import FINISH
from autodl.train._errors import TrialFailed, TrialPruned
from autodl.train._metrics import to_predictions
from autodl.train._tensors import TensorData
from autodl.train._trainer import smoothed
from autodl.train.batched._loss import losses_and_grad, member_losses
from autodl.train.batched._manual import (
    manual_backward,
    manual_eval,
    manual_forward,
    supports_manual,
)
from autodl.train.batched._metrics import (
    group_classification_metrics,
    group_regression_metrics,
)
from autodl.train.batched._mlp import BatchedMLP
from autodl.train.batched._optim import BatchedOptimizer

__all__ = ["GroupTrainer", "Member"]

Report = Callable[[int, int, dict[str, float]], bool | str]  # -> prune? or "finish"


@dataclass
class Member:
    """One trial of the group: its spec, its progress and, once ended, how it ended."""

    spec: Mapping[str, Any]
    metric: str
    maximize: bool
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = float("nan")
    best_state: dict[str, torch.Tensor] | None = None
    best_predictions: torch.Tensor | None = None  # the best epoch's, on the validation rows
    state: str = ""  # "" while training, then COMPLETE | PRUNED | FAIL
    reason: str | None = None
    detail: str = ""
    stop_reason: str = "epochs"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. an error's traceback
    time_s: float = 0.0  # this member's share of the group's wall time

    @property
    def config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = self.spec["config"]
        return config

    @property
    def epochs(self) -> int:
        return int(self.spec["epochs"])

    def end(self, state: str, reason: str | None = None, detail: str = "") -> None:
        self.state, self.reason, self.detail = state, reason, detail

    def update_best(self, epoch: int, value: float) -> bool:
        """``autodl.train._trainer.update_best``: True when ``epoch`` is the new best."""
        if value != value:  # NaN never becomes the best
            return False
        better = value > self.best_value if self.maximize else value < self.best_value
        if self.best_epoch == 0 or better:
            self.best_epoch, self.best_value = epoch, value
            return True
        return False


def _training(m: Member, key: str, default: float) -> float:
    return float(m.config.get("training", {}).get(key, default))


def _batch_starts(n: int, batch_size: int) -> list[int]:
    """Where ``TensorData.train_batches`` starts its batches (a trailing one of one sample,
    and everything after it, is dropped)."""
    starts = []
    for start in range(0, n, batch_size):
        if min(batch_size, n - start) < 2 and start > 0:
            break
        starts.append(start)
    return starts


class GroupTrainer:
    """Trains ``members`` (same architecture, optimizer and batch size) together."""

    def __init__(self, members: Sequence[Member], data: TensorData) -> None:
        first = members[0].config
        training = first.get("training", {})
        self.batch_size = int(training.get("batch_size", 64))
        data = data.with_min_steps(self.batch_size)  # as Trainer does
        self.active, self.data = list(members), data
        self.augment = bool(training.get("augment", False))
        self.hflip = bool(training.get("hflip", False))
        self.model = BatchedMLP([self._init_model(m) for m in members],
                                [self._dropout_rate(m) for m in members], data.device,
                                seed=int(members[0].spec.get("seed", 0)))
        self.params_count = sum(math.prod(s) for s in self.model.shapes.values())
        self.starts = _batch_starts(data.X_train.shape[0] * data.epoch_passes,
                                    self.batch_size)
        self.optimizer = BatchedOptimizer(  # schedules sized as the sequential trainer does
            self.model.flat, self.model.grad, [m.config for m in members],
            [m.epochs for m in members], data.steps_per_epoch(self.batch_size))
        self.generators = [torch.Generator().manual_seed(int(m.spec.get("seed", 0)))
                           for m in members]
        self._set_member_tensors()
        self.X, self.X_val = data.X_train.flatten(1), data.X_val.flatten(1)
        self.manual = supports_manual(self.model)
        self.step = 0
        self.val_out = torch.empty(0)  # the last epoch's validation outputs [K, N, outputs]

    def _init_model(self, m: Member) -> torch.nn.Module:
        """Member ``m``'s initial weights, exactly as ``run_trial`` draws them."""
        torch.manual_seed(int(m.spec.get("seed", 0)))
        d = self.data
        return create_model(m.config["family"], m.config["model"], d.input_shape, d.n_outputs,
                            d.modality)

    def _dropout_rate(self, m: Member) -> float:
        return float(resolve_params(get_family(m.config["family"]), m.config["model"])["dropout"])

    def _set_member_tensors(self) -> None:
        device = self.data.device
        smoothing = [_training(m, "label_smoothing", 0.0) for m in self.active]
        clip = [_training(m, "grad_clip", 0.0) for m in self.active]
        self.smoothing = torch.tensor(smoothing, device=device) if any(smoothing) else None
        self.clip = torch.tensor(clip, device=device) if any(clip) else None

    def fit(self, report: Report) -> Iterator[list[Member]]:
        """Train until every member has ended, yielding the members that end together,
        after the epoch they end in; ``report`` may raise ``TrialStopped``."""
        epoch = 0
        while self.active:
            epoch += 1
            start = time.perf_counter()
            losses = self._train_epoch()
            self.model.precise_batch_norm(self.X)  # as Trainer (autodl.train._norm_stats)
            vals = self._validate()
            lrs = self.optimizer.lr_at(self.step)
            share = (time.perf_counter() - start) / len(self.active)
            for k, m in enumerate(self.active):  # all trained this epoch, even if stopped
                m.history.append({"train_loss": losses[k],
                                  **{f"val_{n}": v for n, v in vals[k].items()},
                                  "lr": lrs[k], "epoch_time_s": share})
                m.time_s += share
            for k, m in enumerate(self.active):
                self._end_epoch(m, k, epoch, report)
            if ended := self._drop_ended():
                yield ended

    def _end_epoch(self, m: Member, k: int, epoch: int, report: Report) -> None:
        """The sequential callbacks on the epoch's metrics, in order: NonFiniteGuard,
        BestCheckpoint, EarlyStopping, EpochReporter; then the epoch limit."""
        metrics = m.history[-1]
        try:
            best = m.update_best(epoch, smoothed(m.history, m.metric))
            for key in ("train_loss", f"val_{m.metric}"):
                if not math.isfinite(metrics.get(key, 0.0)):
                    raise TrialFailed("non_finite", f"{key} is {metrics[key]} at epoch {epoch}")
            if best:
                m.best_state = self.model.member_state(k)
                d = self.data
                m.best_predictions = to_predictions(self.val_out[k], d.task, d.y_mean,
                                                    d.y_std)
            patience = int(_training(m, "early_stopping", 0))
            if patience and epoch - m.best_epoch >= patience:
                m.stop_reason = "early_stopping"
            answer = report(int(m.spec["number"]), epoch, metrics)
            if answer == FINISH:
                m.stop_reason = "timeout"
            elif answer:
                raise TrialPruned(f"pruned at epoch {epoch}")
        except TrialPruned as exc:
            return m.end("PRUNED", "pruned", str(exc))
        except TrialFailed as exc:
            return m.end("FAIL", exc.reason, exc.detail)
        if m.stop_reason in ("early_stopping", "timeout") or epoch >= m.epochs:
            m.end("COMPLETE")

    def _drop_ended(self) -> list[Member]:
        """The members that ended, after taking them out of the stacked state."""
        rows = [k for k, m in enumerate(self.active) if not m.state]
        if len(rows) == len(self.active):
            return []
        ended = [m for m in self.active if m.state]
        self.active = [self.active[k] for k in rows]
        self.generators = [self.generators[k] for k in rows]
        if rows:
            self.model.keep(rows)
            self.optimizer.keep(rows, self.model.flat, self.model.grad)
            self._set_member_tensors()
        return ended

    def _train_epoch(self) -> list[float]:
        perms = torch.stack([self.data.epoch_order(g) for g in self.generators])
        total = torch.zeros(len(self.active), device=self.data.device)
        for start in self.starts:
            idx = perms[:, start : start + self.batch_size]
            labels = self.data.y_train.index_select(0, idx.reshape(-1))
            loss = self._step(self._inputs(idx), labels.view(*idx.shape, *labels.shape[1:]))
            if self.clip is not None:
                self._clip_gradients()
            self.optimizer.step(self.step)
            self.step += 1
            total += loss
        return [v / max(len(self.starts), 1) for v in total.tolist()]

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward of one batch: the members' losses, gradients in
        ``model.grad``."""
        if self.manual:
            out, tape = manual_forward(self.model, x)
            loss, dout = losses_and_grad(out, y, self.data, self.smoothing)
            manual_backward(self.model, tape, dout)
            return loss
        loss = member_losses(self.model.forward(x, True), y, self.data, self.smoothing)
        self.model.backward(loss.sum())
        return loss.detach()

    def _inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """The members' batches, ``[K, B, features]`` (augmented per member's generator)."""
        if not self.augment:
            return self.X.index_select(0, idx.reshape(-1)).view(*idx.shape, -1)
        X, modality = self.data.X_train, self.data.modality
        return torch.stack([augment_batch(X[i], modality, g, hflip=self.hflip).flatten(1)
                            for i, g in zip(idx, self.generators, strict=True)])

    @torch.no_grad()
    def _clip_gradients(self) -> None:
        """``clip_grad_norm_`` per member (norm over all its parameters); 0: no clipping."""
        assert self.clip is not None
        norm = self.model.grad.norm(dim=1)
        coef = (self.clip / (norm + 1e-6)).clamp(max=1.0)
        self.model.grad.mul_(torch.where(self.clip > 0, coef, 1.0).unsqueeze(1))

    @torch.inference_mode()
    def _validate(self, batch_size: int = 2048) -> list[dict[str, float]]:
        X, k, d = self.X_val, len(self.active), self.data
        forward = partial(manual_eval, self.model) if self.manual else partial(
            self.model.forward, train=False)
        starts = range(0, X.shape[0], batch_size)
        if len(starts) == 1:
            out = forward(X.expand(k, -1, -1))
        else:  # the manual path's outputs are reused buffers: copy each chunk
            out = torch.cat([forward(X[i : i + batch_size].expand(k, -1, -1)).clone()
                             for i in starts], dim=1)
        self.val_out = out
        if d.task == "classification":
            return group_classification_metrics(out, d.y_val, d.n_outputs)
        return group_regression_metrics(out, d.y_val, d.y_mean, d.y_std)
