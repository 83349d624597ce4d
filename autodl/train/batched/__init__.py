"""Batched trials: trials of one architecture trained together as one stacked model.

Trials that share an architecture and differ only in continuous hyperparameters are
trained as one stacked model (``[K, ...]`` weights, batched matmuls, one optimizer update
for all members), which on CPU runs many small trials several times faster than one after
the other. Each member still gets its own per-epoch metrics, pruning decision, best epoch
and best-epoch weights (``Member``). ``group_key(config)``: configs with equal, non-None
keys may share a group (family ``mlp`` with one of autodl's own optimizers; see
``_grouping``); ``structural_params`` are the sampled parameters group-mates share.
``autodl.workers`` turns a group's members into trial outcomes.

Modules: ``_loop`` (the epoch loop and per-member bookkeeping), ``_mlp`` (the stacked
model), ``_manual`` (its hand-written forward/backward, used when no layer has a norm;
autograd otherwise), ``_optim`` (per-member optimizers and schedules), ``_loss`` and
``_metrics`` (per-member losses and metrics), ``_grouping`` (which configs batch).
"""

from autodl.train.batched._grouping import group_key, structural_params
from autodl.train.batched._loop import GroupTrainer, Member, Report

__all__ = ["GroupTrainer", "Member", "Report", "group_key", "structural_params"]
