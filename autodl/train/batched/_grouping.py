"""Which trials may train together as one batched group (torch-free: the parent decides).

Configs with equal ``group_key`` share an architecture, an optimizer and a batch size and
differ only in what ``autodl.train.batched`` trains per member (learning rate, weight
decay, optimizer extras, schedule, dropout, label smoothing, clipping, early stopping).
Only autodl's own optimizers and schedules batch (``BATCHED_OPTIMIZERS``,
``BATCHED_SCHEDULES``, with no ``torch.optim``-only argument such as ``amsgrad``): a trial
with any other trains alone, and so does every trial under ``AUTODL_OPTIM=torch``.
``structural_params`` picks, from a trial's sampler-side parameters, the ones a group's
other members must share, so the parent can fix them on the trials it claims next while
the sampler still draws everything else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from autodl.errors import UsageError

__all__ = ["BATCHED_FAMILIES", "BATCHED_MODALITIES", "BATCHED_OPTIMIZERS", "BATCHED_SCHEDULES",
           "group_key", "structural_params"]

BATCHED_FAMILIES = ("mlp",)
BATCHED_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
BATCHED_SCHEDULES = ("constant", "cosine", "step", "onecycle")
BATCHED_MODALITIES = ("tabular", "image", "sequence")  # inputs the stacked MLP flattens
_SHARED_TRAINING = ("batch_size", "augment", "hflip")
_PER_MEMBER_MODEL = ("dropout",)


def group_key(config: Mapping[str, Any], modality: str | None = None) -> tuple[Any, ...] | None:
    """What must be equal for configs to train together; None: not batchable."""
    from autodl.models import get_family, resolve_params

    family = config.get("family")
    optimizer = config.get("optimizer", {}).get("name")
    if family not in BATCHED_FAMILIES or not _batchable_optimizer(config):
        return None
    if modality is not None and modality not in BATCHED_MODALITIES:
        return None
    try:
        params = resolve_params(get_family(str(family)), config.get("model", {}))
    except UsageError:
        return None
    training = config.get("training", {})
    augment = bool(training.get("augment", False))
    arch = tuple((k, params[k]) for k in sorted(params) if k not in _PER_MEMBER_MODEL)
    return (family, arch, optimizer, int(training.get("batch_size", 64)), augment,
            augment and bool(training.get("hflip", False)))


def _batchable_optimizer(config: Mapping[str, Any]) -> bool:
    """autodl's own optimizer with only its own arguments, and one of its schedules."""
    from autodl.train._specs import OPTIMIZER_COMMON, OPTIMIZERS

    if os.environ.get("AUTODL_OPTIM", "").strip().lower() == "torch":
        return False
    opt = config.get("optimizer", {})
    name = opt.get("name")
    if name not in BATCHED_OPTIMIZERS or set(opt) - {"name", *OPTIMIZER_COMMON,
                                                      *OPTIMIZERS[name]}:
        return False
    return config.get("schedule", {}).get("name", "constant") in BATCHED_SCHEDULES


def structural_params(params: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The sampler-side parameters (``SearchSpace.sample``'s names) that fix a trial's
    ``group_key``: the family and its parameters except dropout, the optimizer choice, the
    shared training settings, and what decides whether a trial batches at all: the
    schedule choice and the optimizer's ``torch.optim``-only arguments (``amsgrad``)."""
    from autodl.train._specs import OPTIMIZERS

    per_member = {f"{family}.{k}" for k in _PER_MEMBER_MODEL}
    shared = {"family", "optimizer", "schedule", *(f"training.{k}" for k in _SHARED_TRAINING)}
    own = {f"optimizer.{o}.{k}" for o, table in OPTIMIZERS.items() for k in table}
    torch_only = {name for name in params if name.startswith("optimizer.")
                  and name.count(".") == 2 and name not in own
                  and name.split(".")[2] not in ("lr", "weight_decay")}
    return {name: value for name, value in params.items()
            if name in shared or name in torch_only
            or (name.startswith(f"{family}.") and name not in per_member)}
