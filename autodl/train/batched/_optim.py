"""Optimizers for K stacked trials: one update over a ``[K, P]`` parameter matrix.

Each member keeps its own hyperparameters: the values its sequential optimizer and learning-rate
schedule (``build_optimizer`` / ``build_schedule``) would use at every step (lr, and
momentum / beta1 where one-cycle cycles them) are recorded once on the host as a
``[steps + 1, K]`` float64 table. SGD, Adam and AdamW then run PyTorch's fused kernels, one
call per member row with that member's scalars; RMSprop (no fused kernel) and the
``fused=False`` path mirror PyTorch's single-tensor arithmetic with ``[K, 1]`` factors over
the whole matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from autodl.train import _torch_private as private
from autodl.train._optim import Schedule, build_optimizer, build_schedule
from autodl.train.batched._grouping import BATCHED_OPTIMIZERS

__all__ = ["BatchedOptimizer", "schedule_values"]

SUPPORTED = BATCHED_OPTIMIZERS


def schedule_values(config: Mapping[str, Any], epochs: int, steps_per_epoch: int
                    ) -> dict[str, list[float]]:
    """Per step ``t`` (0 .. epochs*steps_per_epoch), the optimizer group's ``lr``,
    ``momentum`` and ``beta1``/``beta2`` at that step, as the sequential trainer sees them
    (index ``t`` is before the ``t``-th step; the last index is after the final one)."""
    opt = build_optimizer([torch.zeros(1)], config["optimizer"])
    sched = build_schedule(opt, config["schedule"], epochs, steps_per_epoch)
    assert isinstance(sched, Schedule)  # only autodl's own schedules batch (_grouping)
    steps = range(max(1, epochs * steps_per_epoch) + 1)
    group = opt.param_groups[0]
    out = {"lr": [sched.base_lrs[0] * sched.factor(t) for t in steps]}
    if "betas" in group:
        out.update(beta1=[float(group["betas"][0])] * len(steps),
                   beta2=[float(group["betas"][1])] * len(steps))
    else:
        out["momentum"] = [float(group.get("momentum", 0.0))] * len(steps)
    if sched.momentum is not None:  # one-cycle cycles momentum, or Adam's beta1
        out["beta1" if "betas" in group else "momentum"] = [sched.momentum(t) for t in steps]
    return out


def _stack(values: Sequence[Sequence[float]]) -> np.ndarray:
    """``[steps, K]`` float64, shorter members padded with their last value."""
    n = max(len(v) for v in values)
    return np.stack([np.pad(np.asarray(v, dtype=np.float64), (0, n - len(v)), mode="edge")
                     for v in values], axis=1)


class BatchedOptimizer:
    """Updates ``flat`` (``[K, P]``, all of a member's parameters in one row) from ``grad``.

    ``configs``, ``epochs`` (per member) and ``steps_per_epoch`` rebuild each member's
    schedule. ``step(t)`` applies the ``t``-th update (0-based); ``lr_at(t)`` is each
    member's current lr; ``keep(rows, flat, grad)`` drops the other members.

    SGD, Adam and AdamW use PyTorch's fused multi-tensor kernels on CPU and CUDA, one call
    per member with its own hyperparameters (one pass over its row); RMSprop, and every
    optimizer with ``fused=False``, use whole-matrix tensor ops with ``[K, 1]`` factors.
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor,
                 configs: Sequence[Mapping[str, Any]], epochs: Sequence[int],
                 steps_per_epoch: int, fused: bool | None = None) -> None:
        self.name = configs[0]["optimizer"]["name"]
        if self.name not in SUPPORTED or any(c["optimizer"]["name"] != self.name
                                             for c in configs):
            raise ValueError(f"one batched optimizer per group, one of {SUPPORTED}")
        records = [schedule_values(c, e, steps_per_epoch) for c, e in zip(configs, epochs,
                                                                            strict=True)]
        self.table = {k: _stack([r[k] for r in records]) for k in records[0]}
        self.opts = [dict(c["optimizer"]) for c in configs]
        if fused is None:
            fused = flat.device.type in ("cpu", "cuda")
        # no fused RMSprop kernel; a kernel the installed torch lacks: the matrix arithmetic
        self.fused = fused and private.FUSED.get(self.name, False)
        n_state = 2 if self.name in ("adam", "adamw", "rmsprop") else 1
        self.state = [torch.zeros_like(flat) for _ in range(n_state)]
        self.step_count = torch.zeros((), device=flat.device)  # fused Adam's state step
        self._bind(flat, grad)

    def _bind(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        self.flat, self.grad = flat, grad
        self.rows = [(flat[k], grad[k], *(s[k] for s in self.state))
                     for k in range(flat.shape[0])]
        self.coef = {} if self.fused else {
            k: self._tensor(v) for k, v in _coefficients(self.name, self.table, self.opts).items()}
        self.scratch = torch.empty_like(flat) if self.name == "rmsprop" else None
        self.uses_decay = any(float(o.get("weight_decay", 0.0)) != 0 for o in self.opts)
        self.nesterov = self.name == "sgd" and any(_nesterov(o) for o in self.opts)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a), dtype=self.flat.dtype, device=self.flat.device)[..., None]

    def lr_at(self, t: int) -> list[float]:
        lrs = self.table["lr"]
        return [float(v) for v in lrs[min(t, len(lrs) - 1)]]

    def keep(self, rows: list[int], flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Keep members ``rows`` (indices into the current K); the new parameter matrix."""
        index = torch.as_tensor(rows, device=flat.device)
        self.state = [s.index_select(0, index) for s in self.state]
        self.table = {k: v[:, rows] for k, v in self.table.items()}
        self.opts = [self.opts[k] for k in rows]
        self._bind(flat, grad)

    @torch.no_grad()
    def step(self, t: int) -> None:
        if self.fused:
            return self._fused_step(min(t, self.table["lr"].shape[0] - 1))
        c = {k: v[min(t, v.shape[0] - 1)] for k, v in self.coef.items()}
        p, g = self.flat, self.grad
        if self.uses_decay and self.name != "adamw":
            g.addcmul_(p, c["wd"])
        if self.name == "sgd":
            self._sgd(p, g, c)
        elif self.name == "rmsprop":
            self._rmsprop(p, g, c)
        else:
            self._adam(p, g, c)

    def _fused_step(self, t: int) -> None:
        lrs = self.table["lr"][t].tolist()
        if self.name == "sgd":
            moms = self.table["momentum"][t].tolist()
            for (p, g, buf), opt, lr, mom in zip(self.rows, self.opts, lrs, moms, strict=True):
                private.fused_sgd_([p], [g], [buf] if mom != 0 else [],
                                   weight_decay=float(opt.get("weight_decay", 0.0)),
                                   momentum=mom, lr=lr, nesterov=_nesterov(opt),
                                   is_first_step=t == 0 and mom != 0)
            return
        self.step_count += 1
        beta1s, beta2s = self.table["beta1"][t].tolist(), self.table["beta2"][t].tolist()
        for (p, g, m, v), opt, lr, b1, b2 in zip(self.rows, self.opts, lrs, beta1s, beta2s,
                                                strict=True):
            private.fused_adam_([p], [g], [m], [v], [self.step_count],
                                decoupled=self.name == "adamw", lr=lr, beta1=b1, beta2=b2,
                                weight_decay=float(opt.get("weight_decay", 0.0)),
                                eps=float(opt.get("eps", 1e-8)))

    def _sgd(self, p: torch.Tensor, g: torch.Tensor, c: dict[str, torch.Tensor]) -> None:
        buf = self.state[0]
        buf.mul_(c["momentum"]).add_(g)
        update = buf
        if self.nesterov:
            update = torch.where(c["nesterov"] > 0, g.addcmul(buf, c["momentum"]), buf)
        p.addcmul_(update, c["neg_lr"])

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor, c: dict[str, torch.Tensor]) -> None:
        """In place, through one preallocated scratch matrix (no temporaries)."""
        square_avg, buf = self.state
        assert self.scratch is not None
        scaled = torch.mul(g, c["one_minus_alpha"], out=self.scratch)
        square_avg.mul_(c["alpha"]).addcmul_(scaled, g)
        avg = torch.sqrt(square_avg, out=self.scratch).add_(c["eps"])
        buf.mul_(c["momentum"]).addcdiv_(g, avg)
        p.addcmul_(buf, c["neg_lr"])

    def _adam(self, p: torch.Tensor, g: torch.Tensor, c: dict[str, torch.Tensor]) -> None:
        exp_avg, exp_avg_sq = self.state
        if self.uses_decay and self.name == "adamw":
            p.mul_(c["decay"])
        exp_avg.lerp_(g, c["one_minus_beta1"])
        exp_avg_sq.mul_(c["beta2"]).addcmul_(g, g * c["one_minus_beta2"])
        denom = (exp_avg_sq.sqrt() / c["bias2_sqrt"]).add_(c["eps"])
        p.addcdiv_(exp_avg * c["neg_step"], denom)


def _nesterov(opt: Mapping[str, Any]) -> bool:
    return bool(opt.get("nesterov", False)) and float(opt.get("momentum", 0.9)) > 0


def _coefficients(name: str, table: dict[str, np.ndarray],
                  opts: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Every per-step factor of the update, ``[steps, K]``, computed in float64 as PyTorch
    computes its Python-float scalars."""
    lr = table["lr"]
    wd = np.array([float(o.get("weight_decay", 0.0)) for o in opts])[None, :]
    out = {"neg_lr": -lr, "wd": np.broadcast_to(wd, lr.shape)}
    if name == "sgd":
        nest = np.array([float(_nesterov(o)) for o in opts])[None, :]
        out.update(momentum=table["momentum"], nesterov=np.broadcast_to(nest, lr.shape))
    elif name == "rmsprop":
        alpha = np.array([float(o.get("alpha", 0.99)) for o in opts])[None, :]
        out.update(momentum=table["momentum"], alpha=np.broadcast_to(alpha, lr.shape),
                   one_minus_alpha=np.broadcast_to(1 - alpha, lr.shape),
                   eps=np.full(lr.shape, 1e-8))
    else:
        step = np.arange(1, lr.shape[0] + 1, dtype=np.float64)[:, None]
        beta1, beta2 = table["beta1"], table["beta2"]
        eps = np.array([float(o.get("eps", 1e-8)) for o in opts])[None, :]
        out.update(decay=1 - lr * wd, one_minus_beta1=1 - beta1, beta2=beta2,
                   one_minus_beta2=1 - beta2, bias2_sqrt=(1 - beta2**step) ** 0.5,
                   neg_step=-(lr / (1 - beta1**step)), eps=np.broadcast_to(eps, lr.shape))
    return out
