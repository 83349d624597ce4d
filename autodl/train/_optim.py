"""Optimizers and per-step learning-rate schedules (with linear warm-up) from a resolved config."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

__all__ = ["build_optimizer", "build_schedule"]


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | torch.nn.Module, cfg: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """``cfg`` is the resolved ``optimizer`` section: ``name``, ``lr``, ``weight_decay``, extras.

    ``params`` may be a model: one that defines ``param_groups(base_lr) -> list[dict]``
    is optimised in those groups (a group's ``lr`` / ``weight_decay`` override ``cfg``'s),
    any other with all its parameters.
    """
    name, lr, wd = cfg["name"], float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    params = _parameters(params, lr)
    betas = (float(cfg.get("beta1", 0.9)), float(cfg.get("beta2", 0.999)))
    eps = float(cfg.get("eps", 1e-8))
    if name == "sgd":
        momentum = float(cfg.get("momentum", 0.9))
        nesterov = bool(cfg.get("nesterov", False)) and momentum > 0
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=float(cfg.get("alpha", 0.99)),
                                   momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def _parameters(source: Iterable[torch.nn.Parameter] | torch.nn.Module, lr: float) -> Any:
    if not isinstance(source, torch.nn.Module):
        return source
    groups = getattr(source, "param_groups", None)
    return groups(lr) if callable(groups) else source.parameters()


def _decay(cfg: Mapping[str, Any], total: int, per_epoch: int) -> Callable[[int], float]:
    name = cfg["name"]
    if name == "cosine":
        floor = float(cfg.get("min_lr_factor", 0.0))
        return lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    if name == "step":
        size, gamma = int(cfg.get("step_size", 10)) * per_epoch, float(cfg.get("gamma", 0.1))
        return lambda s: gamma ** (s // size)
    return lambda s: 1.0


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per optimizer step.

    Warm-up rises linearly from lr/10 over ``warmup_epochs``; the decay (cosine, step) runs
    over the steps after it. ``onecycle`` is PyTorch's OneCycleLR peaking at ``lr``.
    """
    total = max(1, epochs * steps_per_epoch)
    if cfg["name"] == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total, pct_start=float(cfg.get("pct_start", 0.3))
        )
    warm = min(int(cfg.get("warmup_epochs", 0)) * steps_per_epoch, total - 1)
    decay = _decay(cfg, max(1, total - warm), steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        return decay(step - warm)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
