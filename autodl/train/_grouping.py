"""Which trials may train together as one batched group (torch-free: the parent decides).

Configs with equal ``group_key`` share an architecture, an optimizer and a batch size and
differ only in what ``autodl.train._batched`` trains per member (learning rate, weight
decay, optimizer extras, schedule, dropout, label smoothing, clipping, early stopping).
``structural_params`` picks, from a trial's sampler-side parameters, the ones a group's
other members must share, so the parent can fix them on the trials it claims next while
the sampler still draws everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autodl.errors import UsageError

__all__ = ["BATCHED_FAMILIES", "BATCHED_MODALITIES", "BATCHED_OPTIMIZERS", "group_key",
           "structural_params"]

BATCHED_FAMILIES = ("mlp",)
BATCHED_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
BATCHED_MODALITIES = ("tabular", "image", "sequence")  # inputs the stacked MLP flattens
_SHARED_TRAINING = ("batch_size", "augment", "hflip")
_PER_MEMBER_MODEL = ("dropout",)


def group_key(config: Mapping[str, Any], modality: str | None = None) -> tuple[Any, ...] | None:
    """What must be equal for configs to train together; None: not batchable."""
    from autodl.models._registry import get_family, resolve_params

    family = config.get("family")
    optimizer = config.get("optimizer", {}).get("name")
    if family not in BATCHED_FAMILIES or optimizer not in BATCHED_OPTIMIZERS:
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


def structural_params(params: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The sampler-side parameters (``SearchSpace.sample``'s names) that fix a trial's
    ``group_key``: the family and its parameters except dropout, the optimizer choice, and
    the shared training settings."""
    per_member = {f"{family}.{k}" for k in _PER_MEMBER_MODEL}
    shared = {"family", "optimizer", *(f"training.{k}" for k in _SHARED_TRAINING)}
    return {name: value for name, value in params.items()
            if name in shared or (name.startswith(f"{family}.") and name not in per_member)}
