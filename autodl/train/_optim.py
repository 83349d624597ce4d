"""Optimizers and learning-rate schedules (with linear warm-up) from a resolved config.

autodl's four (sgd, adam, adamw, rmsprop) have ``torch.optim``'s update rules, the
schedules (constant, cosine, step, onecycle) are ``LambdaLR``'s and ``OneCycleLR``'s, and
``state_dict`` has their layout, but neither is built on ``torch.optim``: its
``Optimizer`` imports ``torch._dynamo`` when it is constructed and on every step, about 2 s
that every trial process paid before its first step (as long as importing torch again).
SGD, Adam and AdamW run PyTorch's fused multi-tensor kernels (the ones ``fused=True``
selects) on CPU and CUDA; RMSprop, and the other devices, run PyTorch's single-tensor
arithmetic.

Every other ``torch.optim`` optimizer is built from ``torch.optim`` (``fused=True`` where
it has it, else ``foreach=True``), and so are the four when a config sets an argument
autodl's update does not implement (``amsgrad: true``), when their fused kernel does not
work with the installed torch (``autodl.train._torch_private``), or under
``AUTODL_OPTIM=torch``. Every other ``torch.optim.lr_scheduler`` schedule runs as
``TorchSchedule``: per batch for OneCycleLR and CyclicLR, per epoch for the others, and
ReduceLROnPlateau once per epoch on the validation objective.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from autodl.train import _torch_private as private

__all__ = ["Optimizer", "Schedule", "TorchSchedule", "build_optimizer", "build_schedule",
           "uses_fast_optimizer"]

_FUSED_DEVICES = ("cpu", "cuda")


class Optimizer:
    """``name`` (sgd, adam, adamw, rmsprop) over ``param_groups``, each a dict of the
    parameters and their hyperparameters (``lr``, ``weight_decay``, ``momentum``,
    ``nesterov``, ``betas``, ``eps``, ``alpha``), as in ``torch.optim``."""

    _step_supports_amp_scaling = False  # GradScaler unscales first and skips on inf

    def __init__(self, name: str, groups: Iterable[Mapping[str, Any]],
                 defaults: Mapping[str, Any]) -> None:
        if name not in _STEPS:
            raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(_STEPS)}")
        self.name, self.defaults = name, dict(defaults)
        self.param_groups = [{**self.defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                _STEPS[self.name](group, params, [self._state(p) for p in params])

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:  # SGD's and RMSprop's momentum buffers come on their first use
            state = self.state[p] = {}
            if self.name != "sgd":
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            for key in _STATE_KEYS[self.name]:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s layout: ``state`` by parameter index, ``param_groups`` with
        the indices of their parameters."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the saved optimizer state has different parameter groups")
        params = [p for g in self.param_groups for p in g["params"]]
        for group, old in zip(self.param_groups, saved, strict=True):
            group.update({k: v for k, v in old.items() if k != "params"})
        self.state = {}
        for i, values in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: v.to(p.device, torch.float32 if k == "step" else p.dtype,
                                     copy=True)
                             for k, v in values.items() if v is not None}


_STATE_KEYS = {"sgd": (), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
               "rmsprop": ("square_avg",)}


def _fusable(params: list[torch.Tensor]) -> bool:
    first = params[0]
    return first.device.type in _FUSED_DEVICES and all(
        p.device == first.device and p.dtype == first.dtype for p in params)


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters' gradients (``Optimizer.step`` passes only parameters that have one)."""
    return [p.grad for p in params if p.grad is not None]


def _sgd(group: Mapping[str, Any], params: list[torch.Tensor],
         states: list[dict[str, torch.Tensor]]) -> None:
    lr, wd, momentum = float(group["lr"]), float(group["weight_decay"]), float(group["momentum"])
    nesterov = bool(group["nesterov"])
    grads = _grads(params)
    first = momentum != 0 and any("momentum_buffer" not in s for s in states)
    if first:  # the kernel sets it to the gradient
        for p, s in zip(params, states, strict=True):
            s["momentum_buffer"] = torch.empty_like(p)
    bufs = [s["momentum_buffer"] for s in states] if momentum != 0 else []
    if _fusable(params):
        private.fused_sgd_(params, grads, bufs, weight_decay=wd, momentum=momentum, lr=lr,
                           nesterov=nesterov, is_first_step=first)
        return
    for p, g, buf in zip(params, grads, bufs if bufs else [None] * len(params), strict=True):
        if wd:
            g = g.add(p, alpha=wd)
        if buf is not None:
            if first:
                buf.copy_(g)
            else:
                buf.mul_(momentum).add_(g)
            g = g.add(buf, alpha=momentum) if nesterov else buf
        p.add_(g, alpha=-lr)


def _adam(group: Mapping[str, Any], params: list[torch.Tensor],
          states: list[dict[str, torch.Tensor]], decoupled: bool = False) -> None:
    lr, wd, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
    beta1, beta2 = (float(b) for b in group["betas"])
    grads = _grads(params)
    avgs, sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
    steps = [s["step"] for s in states]
    private.foreach_add_(steps, 1)
    if _fusable(params):
        private.fused_adam_(params, grads, avgs, sqs, steps, decoupled=decoupled, lr=lr,
                            beta1=beta1, beta2=beta2, weight_decay=wd, eps=eps)
        return
    for p, g, avg, sq, step_t in zip(params, grads, avgs, sqs, steps, strict=True):
        step = float(step_t)
        if decoupled:
            p.mul_(1 - lr * wd)
        elif wd:
            g = g.add(p, alpha=wd)
        avg.lerp_(g, 1 - beta1)
        sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (sq.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
        p.addcdiv_(avg, denom, value=-lr / (1 - beta1**step))


def _rmsprop(group: Mapping[str, Any], params: list[torch.Tensor],
             states: list[dict[str, torch.Tensor]]) -> None:
    lr, wd, alpha = float(group["lr"]), float(group["weight_decay"]), float(group["alpha"])
    momentum, eps = float(group["momentum"]), float(group["eps"])
    private.foreach_add_([s["step"] for s in states], 1)
    for p, grad, s in zip(params, _grads(params), states, strict=True):
        g = grad if not wd else grad.add(p, alpha=wd)
        square_avg = s["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
        avg = square_avg.sqrt().add_(eps)
        if momentum > 0:
            if "momentum_buffer" not in s:
                s["momentum_buffer"] = torch.zeros_like(p)
            buf = s["momentum_buffer"]
            buf.mul_(momentum).addcdiv_(g, avg)
            p.add_(buf, alpha=-lr)
        else:
            p.addcdiv_(g, avg, value=-lr)


_STEPS: dict[str, Callable[..., None]] = {
    "sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop,
    "adamw": lambda group, params, states: _adam(group, params, states, decoupled=True),
}


def build_optimizer(
    params: Iterable[torch.Tensor] | Iterable[Mapping[str, Any]] | torch.nn.Module,
    cfg: Mapping[str, Any],
) -> Any:
    """``cfg`` is the resolved ``optimizer`` section: ``name``, ``lr``, ``weight_decay``, extras.

    ``params`` may be a model: one that defines ``param_groups(base_lr) -> list[dict]``
    is optimised in those groups (a group's ``lr`` / ``weight_decay`` override ``cfg``'s),
    any other with all its parameters; or parameters, or such groups. autodl's
    :class:`Optimizer` where ``uses_fast_optimizer(cfg)``, else a ``torch.optim`` one.
    """
    if not uses_fast_optimizer(cfg):
        return _torch_optimizer(params, cfg)
    name, lr, wd = cfg["name"], float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    defaults: dict[str, Any] = {"lr": lr, "weight_decay": wd}
    if name == "sgd":
        momentum = float(cfg.get("momentum", 0.9))
        defaults.update(momentum=momentum,
                        nesterov=bool(cfg.get("nesterov", False)) and momentum > 0)
    elif name in ("adam", "adamw"):
        defaults.update(betas=(float(cfg.get("beta1", 0.9)), float(cfg.get("beta2", 0.999))),
                        eps=float(cfg.get("eps", 1e-8)))
    elif name == "rmsprop":
        defaults.update(alpha=float(cfg.get("alpha", 0.99)),
                        momentum=float(cfg.get("momentum", 0.0)), eps=1e-8)
    return Optimizer(name, _groups(params, lr), defaults)


_OWN_KEYS = {"sgd": ("momentum", "nesterov"), "adam": ("beta1", "beta2", "eps"),
             "adamw": ("beta1", "beta2", "eps"), "rmsprop": ("alpha", "momentum")}


def uses_fast_optimizer(cfg: Mapping[str, Any]) -> bool:
    """Whether autodl's own update runs ``cfg``: one of its four, every other argument at
    torch's default, its fused kernel working (or none needed), no ``AUTODL_OPTIM=torch``."""
    name = str(cfg["name"])
    if name not in _STEPS or private.use_torch_optim() or not private.FUSED.get(name, True):
        return False
    extras = set(cfg) - {"name", "lr", "weight_decay", *_OWN_KEYS[name]}
    if not extras:
        return True
    from autodl.train._torch_specs import torch_default

    return all(cfg[k] == torch_default(name, k) for k in extras)


def _torch_optimizer(params: Any, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``torch.optim``'s class named ``cfg["name"]`` with the config's arguments, fused
    where the class and device allow it, else multi-tensor (foreach)."""
    from autodl.train._torch_specs import OPTIMIZER_MANAGED, optimizer_class

    name, lr = str(cfg["name"]), float(cfg["lr"])
    cls = optimizer_class(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}")
    sig = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()
                              if k in sig and k not in OPTIMIZER_MANAGED}
    if "betas" in sig:  # beta1 / beta2 (ranges in a space) override betas' items
        betas = list(kwargs.get("betas") or sig["betas"].default)
        for i, key in enumerate(("beta1", "beta2")):
            if cfg.get(key) is not None:
                betas[i] = float(cfg[key])
        kwargs["betas"] = tuple(betas)
    if name.lower() == "sgd" and not float(kwargs.get("momentum", 0.0)):
        kwargs["nesterov"] = False  # as autodl's SGD: Nesterov needs momentum
    if "weight_decay" not in sig:
        if float(cfg.get("weight_decay", 0.0)):
            raise ValueError(f"{cls.__name__} takes no weight_decay")
    else:
        kwargs["weight_decay"] = float(cfg.get("weight_decay", 0.0))
    kwargs["lr"] = lr
    groups = [{**g, "params": list(g["params"])} for g in _groups(params, lr)]
    for switch in ("fused", "foreach"):
        if switch in sig:
            try:
                optimizer: torch.optim.Optimizer = cls(groups, **kwargs, **{switch: True})
                return optimizer
            except (RuntimeError, ValueError, TypeError):  # device or dtype not supported
                continue
    optimizer = cls(groups, **kwargs)
    return optimizer


def _groups(source: Any, lr: float) -> list[Mapping[str, Any]]:
    if isinstance(source, torch.nn.Module):
        groups = getattr(source, "param_groups", None)
        if callable(groups):
            return list(groups(lr))
        source = source.parameters()
    items = list(source)  # parameters, or groups as torch.optim takes them
    return items if items and isinstance(items[0], Mapping) else [{"params": items}]


class Schedule:
    """Sets every group's ``lr`` to its base lr times ``factor(step)`` (and, for one-cycle,
    ``momentum`` or Adam's beta1 to ``momentum(step)``), stepped once per optimizer step;
    ``state_dict`` keeps ``torch.optim.lr_scheduler``'s ``base_lrs`` / ``last_epoch``."""

    def __init__(self, optimizer: Optimizer, factor: Callable[[int], float],
                 momentum: Callable[[int], float] | None = None) -> None:
        self.optimizer, self.factor, self.momentum = optimizer, factor, momentum
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.last_epoch)
        m = self.momentum(self.last_epoch) if self.momentum is not None else None
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f
            if m is not None and "betas" in group:
                group["betas"] = (m, group["betas"][1])
            elif m is not None and "momentum" in group:
                group["momentum"] = m

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def epoch_end(self, value: float) -> None:
        """Called after each epoch's validation: stepped per batch, nothing to do."""

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch,
                "_last_lr": self.get_last_lr()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.last_epoch = int(state["last_epoch"])
        self._apply()


def _decay(cfg: Mapping[str, Any], total: int, per_epoch: int) -> Callable[[int], float]:
    name = cfg["name"]
    if name == "cosine":
        floor = float(cfg.get("min_lr_factor", 0.0))
        return lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    if name == "step":
        size, gamma = int(cfg.get("step_size", 10)) * per_epoch, float(cfg.get("gamma", 0.1))
        return lambda s: gamma ** (s // size)
    return lambda s: 1.0


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _one_cycle(total: int, pct_start: float) -> tuple[Callable[[int], float],
                                                      Callable[[int], float]]:
    """``OneCycleLR``'s defaults as factors of the peak lr: from 1/25 up to 1 over the
    first ``pct_start`` of the steps, then down to 1/25e4, with momentum 0.95 -> 0.85 ->
    0.95 (cosine annealing in both)."""
    phases = [(float(pct_start * total) - 1, (1 / 25, 1.0), (0.95, 0.85)),
              (float(total - 1), (1.0, 1 / 25 / 1e4), (0.85, 0.95))]

    def at(step: int) -> tuple[float, float]:
        start = 0.0
        for i, (end, lrs, moms) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - start) / (end - start) if end != start else 1.0
                return _cos(*lrs, pct), _cos(*moms, pct)
            start = end
        raise AssertionError("unreachable")

    return (lambda s: at(s)[0]), (lambda s: at(s)[1])


def build_schedule(
    optimizer: Any, cfg: Mapping[str, Any], epochs: int, steps_per_epoch: int,
    maximize: bool = False,
) -> Schedule | TorchSchedule:
    """A schedule stepped once per optimizer step (``step()``), told each epoch's
    validation objective (``epoch_end(value)``; ``maximize``: higher is better).

    Warm-up rises linearly from lr/10 over ``warmup_epochs``; the decay (cosine, step) runs
    over the steps after it. ``onecycle`` is PyTorch's OneCycleLR peaking at ``lr``. Any
    other name is a ``torch.optim.lr_scheduler`` class (:class:`TorchSchedule`).
    """
    if str(cfg["name"]).lower() not in ("constant", "cosine", "step", "onecycle"):
        return _torch_schedule(optimizer, cfg, epochs, steps_per_epoch, maximize)
    total = max(1, epochs * steps_per_epoch)
    if cfg["name"] == "onecycle":
        return Schedule(optimizer, *_one_cycle(total, float(cfg.get("pct_start", 0.3))))
    warm = min(int(cfg.get("warmup_epochs", 0)) * steps_per_epoch, total - 1)
    decay = _decay(cfg, max(1, total - warm), steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        return decay(step - warm)

    return Schedule(optimizer, factor)


class TorchSchedule:
    """A ``torch.optim.lr_scheduler`` schedule behind :class:`Schedule`'s interface.

    ``step()`` runs after every optimizer step: warm-up first (lr/10 up to the schedule's
    starting lr over ``warm`` steps), then the scheduler, per batch (``per="step"``), per
    epoch (``"epoch"``) or, ReduceLROnPlateau, on ``epoch_end(value)`` (``"plateau"``).
    """

    def __init__(self, optimizer: Any, scheduler: Any, per: str, warm: int,
                 steps_per_epoch: int) -> None:
        self.optimizer, self.scheduler, self.per = optimizer, scheduler, per
        self.warm, self.steps_per_epoch = warm, max(1, steps_per_epoch)
        self.start_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._warm_up()

    def _warm_up(self) -> None:
        if self.last_epoch <= self.warm and self.warm > 0:
            f = 0.1 + 0.9 * self.last_epoch / self.warm
            for group, lr in zip(self.optimizer.param_groups, self.start_lrs, strict=True):
                group["lr"] = lr * f

    def step(self) -> None:
        self.last_epoch += 1
        after = self.last_epoch - self.warm
        if after <= 0:
            self._warm_up()
        elif self.per == "step" or (self.per == "epoch" and after % self.steps_per_epoch == 0):
            self._step()

    def epoch_end(self, value: float) -> None:
        if self.per == "plateau" and self.last_epoch > self.warm:
            self._step(value)

    def _step(self, *args: float) -> None:
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()":
            warnings.simplefilter("ignore")  # autodl's optimizer is not the one it wraps
            self.scheduler.step(*args)

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "start_lrs": list(self.start_lrs),
                "_last_lr": self.get_last_lr(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.start_lrs = [float(v) for v in state["start_lrs"]]
        self.scheduler.load_state_dict(state["scheduler"])


def _torch_schedule(optimizer: Any, cfg: Mapping[str, Any], epochs: int,
                    steps_per_epoch: int, maximize: bool) -> TorchSchedule:
    from autodl.train._torch_specs import PER_STEP_SCHEDULES, SCHEDULE_MANAGED, schedule_class

    name = str(cfg["name"])
    cls = schedule_class(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}")
    low = name.lower()
    sig = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in cfg.items() if k in sig and k not in SCHEDULE_MANAGED}
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    warm_epochs = min(int(cfg.get("warmup_epochs", 0)), max(epochs - 1, 0))
    warm = warm_epochs * steps_per_epoch
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    if low == "onecyclelr":
        kwargs.update(max_lr=lrs, total_steps=max(1, epochs * steps_per_epoch - warm))
    elif low == "cycliclr":
        kwargs["max_lr"] = lrs
    elif low == "cosineannealinglr" and kwargs.get("T_max") is None:
        kwargs["T_max"] = max(1, epochs - warm_epochs)
    elif low == "reducelronplateau":
        kwargs["mode"] = "max" if maximize else "min"
    target = (optimizer if isinstance(optimizer, torch.optim.Optimizer)
              else private.scheduler_view(optimizer))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = cls(target, **kwargs)
    per = ("step" if low in PER_STEP_SCHEDULES else
           "plateau" if low == "reducelronplateau" else "epoch")
    return TorchSchedule(optimizer, scheduler, per, warm, steps_per_epoch)
