"""``torch.optim``'s optimizers and ``torch.optim.lr_scheduler``'s schedules as search-space
options: their names and, read off the installed torch's signatures, the keyword arguments
a space may set, each as a :class:`~autodl.params.ParamSpec`.

Importing this module does not import torch; the first lookup does (a space that names
only autodl's own optimizers and schedules never pays it). Names match case-insensitively
(``radam``, ``RAdam``; ``ReduceLROnPlateau``, ``reducelronplateau``).

An argument's kind comes from its annotation and default: ``bool``, ``int``, ``float``,
``Literal[...]`` (a choice), ``tuple[...]`` of numbers (a list of that length: ``betas``),
``list[int]`` (``milestones``). Arguments autodl sets itself (the parameters, the
implementation switches, the lr shared by every option) are refused with the reason;
optimizers with ``betas`` also take ``beta1``/``beta2``, so each can be a range.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from autodl.params import ParamSpec

__all__ = [
    "OPTIMIZER_MANAGED",
    "PER_STEP_SCHEDULES",
    "SCHEDULE_MANAGED",
    "UNSUPPORTED_OPTIMIZERS",
    "UNSUPPORTED_SCHEDULES",
    "optimizer_class",
    "optimizer_specs",
    "schedule_class",
    "schedule_specs",
    "torch_optimizers",
    "torch_schedules",
]

OPTIMIZER_MANAGED = {
    "params": "autodl passes the model's parameters",
    "foreach": "autodl picks the implementation (AUTODL_OPTIM=torch: torch.optim's)",
    "fused": "autodl picks the implementation (AUTODL_OPTIM=torch: torch.optim's)",
    "capturable": "autodl picks the implementation",
    "differentiable": "autodl does not differentiate through the optimizer step",
    "maximize": "autodl minimises the training loss",
}
UNSUPPORTED_OPTIMIZERS = {
    "lbfgs": "LBFGS re-evaluates the loss several times per step (step(closure)), which "
             "autodl's training loop does not do",
    "sparseadam": "SparseAdam needs sparse gradients; autodl's models have dense ones",
    "muon": "Muon updates only 2-D weight matrices; autodl's models also have biases and "
            "norm weights",
}
SCHEDULE_MANAGED = {
    "optimizer": "autodl passes the trial's optimizer",
    "last_epoch": "autodl resumes a schedule from its checkpoint",
    "verbose": "autodl logs the lr of every epoch",
    "mode": "autodl follows the objective's direction (max for accuracy, min for rmse)",
    "max_lr": "the peak is the optimizer's lr",
    "total_steps": "autodl sets it from the trial's epochs and batches",
    "epochs": "autodl sets it from the trial's epochs and batches",
    "steps_per_epoch": "autodl sets it from the trial's epochs and batches",
}
UNSUPPORTED_SCHEDULES = {
    "lambdalr": "LambdaLR takes a Python function, which a YAML file cannot hold",
    "multiplicativelr": "MultiplicativeLR takes a Python function, which a YAML file "
                        "cannot hold",
    "sequentiallr": "SequentialLR chains scheduler objects; use warmup_epochs for a warm-up",
    "chainedscheduler": "ChainedScheduler chains scheduler objects",
    "lrscheduler": "LRScheduler is the base class",
    "_lrscheduler": "_LRScheduler is the base class",
}
# Stepped once per batch, as their documentation says; the others once per epoch, and
# ReduceLROnPlateau once per epoch on the validation objective.
PER_STEP_SCHEDULES = ("onecyclelr", "cycliclr")
# Defaults autodl fills when the space leaves them out (they depend on the trial).
_FILLED = {"cosineannealinglr": {"T_max": "the trial's epochs (after warm-up)"}}


@cache
def torch_optimizers() -> dict[str, type]:
    """Lower-case name -> class, every ``torch.optim`` optimizer of the installed torch
    (the unsupported ones included, so that their names get the reason)."""
    import torch.optim

    out = {}
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
                and cls is not torch.optim.Optimizer):
            out[name.lower()] = cls
    return out


@cache
def torch_schedules() -> dict[str, type]:
    """Lower-case name -> class, every scheduler in ``torch.optim.lr_scheduler``."""
    from torch.optim import lr_scheduler

    out = {}
    for name in dir(lr_scheduler):
        cls = getattr(lr_scheduler, name)
        if isinstance(cls, type) and (issubclass(cls, lr_scheduler.LRScheduler)
                                      or name == "ReduceLROnPlateau"):
            out[name.lower()] = cls
    return out


def optimizer_class(name: str) -> type | None:
    return torch_optimizers().get(name.lower())


def schedule_class(name: str) -> type | None:
    return torch_schedules().get(name.lower())


@cache
def optimizer_specs(name: str) -> dict[str, ParamSpec | str]:
    """Each keyword argument of optimizer ``name``: its spec, or why a space cannot set it
    (a string). ``lr`` and ``weight_decay`` are left out: every option shares them."""
    cls = optimizer_class(name)
    if cls is None:
        raise KeyError(name)
    out = _arguments(cls, OPTIMIZER_MANAGED, skip=("lr", "weight_decay"))
    if isinstance(out.get("betas"), ParamSpec):
        for i in (1, 2):
            out[f"beta{i}"] = ParamSpec("float", None, low=0.0, high=1.0, high_open=True,
                                        help=f"betas[{i - 1}], so that it can be a range")
    return out


@cache
def schedule_specs(name: str) -> dict[str, ParamSpec | str]:
    """Each keyword argument of scheduler ``name``: its spec, or why it cannot be set."""
    cls = schedule_class(name)
    if cls is None:
        raise KeyError(name)
    out = _arguments(cls, SCHEDULE_MANAGED, skip=())
    for key, what in _FILLED.get(name.lower(), {}).items():
        spec = out.get(key)
        if isinstance(spec, ParamSpec):
            out[key] = ParamSpec(spec.kind, None, low=spec.low, help=f"default: {what}")
    return out


def _arguments(cls: type, managed: Mapping[str, str], skip: tuple[str, ...]
               ) -> dict[str, ParamSpec | str]:
    out: dict[str, ParamSpec | str] = {}
    for param in inspect.signature(cls).parameters.values():
        if param.name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out[param.name] = managed.get(param.name) or _spec(param)
    return out


def _spec(param: inspect.Parameter) -> ParamSpec | str:
    """The spec of one argument, or why it cannot come from YAML."""
    note = param.annotation
    text = note if isinstance(note, str) else getattr(note, "__name__", None) or str(note)
    text = text.replace("typing.", "").replace("collections.abc.", "")
    default = None if param.default is inspect.Parameter.empty else param.default
    required = param.default is inspect.Parameter.empty
    if "Callable" in text:
        return "a Python function cannot come from YAML"
    literal = re.search(r"Literal\[(.*?)\]", text)
    if literal:
        return ParamSpec("choice", default, choices=tuple(ast.literal_eval(f"({literal[1]},)")),
                         required=required)
    if isinstance(default, bool) or text == "bool":
        return ParamSpec("bool", default, required=required)
    if isinstance(default, tuple) or text.startswith("tuple["):
        length = len(default) if isinstance(default, tuple) else text.count(",") + 1
        return ParamSpec("tuple", default, length=length, required=required)
    if re.match(r"(Iterable|list|Sequence)\[int\]", text):
        return ParamSpec("tuple", default, item="int", required=required)
    if "float" in text or isinstance(default, float):
        return ParamSpec("float", default, required=required)
    if "int" in text or isinstance(default, int):
        return ParamSpec("int", default, required=required)
    if "str" in text or isinstance(default, str):
        return ParamSpec("str", default, required=required)
    return f"its type ({text}) cannot come from YAML"


def torch_default(name: str, key: str) -> Any:
    """The default of optimizer ``name``'s argument ``key`` in the installed torch."""
    cls = optimizer_class(name)
    if cls is None:
        return None
    param = inspect.signature(cls).parameters.get(key)
    return None if param is None or param.default is param.empty else param.default
