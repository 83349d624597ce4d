"""Every use of PyTorch's private API in autodl, each checked once against the installed torch.

autodl's optimizers (``autodl.train._optim``, ``autodl.train.batched._optim``) call the
fused kernels that ``torch.optim`` runs for ``fused=True``. They are private: their names
and signatures may change in any release. At import each kernel is called once on
1-element CPU tensors and its result compared with the update rule; ``FUSED`` records
which ones work. An optimizer whose kernel is missing or behaves differently is built
from ``torch.optim`` instead (``fused=True``, else ``foreach=True``), so a newer or
older torch changes the speed, never the result. ``AUTODL_OPTIM=torch`` makes every
optimizer ``torch.optim``'s (the switch to the library's implementations).

The public alternative to each kernel is ``torch.optim.SGD/Adam/AdamW(fused=True)``. It
is not used by default because ``torch.optim.Optimizer`` imports ``torch._dynamo`` on
construction and on its first step (about 2 s per trial process, as long as importing
torch), and its per-step Python overhead is larger than the kernels' for the small
models a search trains by the hundred.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["FUSED", "foreach_add_", "fused_adam_", "fused_sgd_", "scheduler_view",
           "use_torch_optim"]


def use_torch_optim() -> bool:
    """``AUTODL_OPTIM=torch``: build every optimizer from ``torch.optim``."""
    return os.environ.get("AUTODL_OPTIM", "").strip().lower() == "torch"


def _kernel(name: str) -> Callable[..., Any] | None:
    return getattr(torch, name, None)


# torch._fused_sgd_: public alternative torch.optim.SGD(fused=True) (imports torch._dynamo).
_FUSED_SGD = _kernel("_fused_sgd_")
# torch._fused_adam_ / torch._fused_adamw_: torch.optim.Adam/AdamW(fused=True), likewise.
_FUSED_ADAM = _kernel("_fused_adam_")
_FUSED_ADAMW = _kernel("_fused_adamw_")
# torch._foreach_add_: public alternative a loop of Tensor.add_ (one kernel per tensor);
# used where present (it adds 1 to every step counter in one call), the loop otherwise.
_FOREACH_ADD = _kernel("_foreach_add_")


def fused_sgd_(params: list[torch.Tensor], grads: list[torch.Tensor],
               bufs: list[torch.Tensor], *, weight_decay: float, momentum: float, lr: float,
               nesterov: bool, is_first_step: bool) -> None:
    """``torch.optim.SGD``'s fused step (no dampening, not maximizing)."""
    assert _FUSED_SGD is not None
    _FUSED_SGD(params, grads, bufs, weight_decay=weight_decay, momentum=momentum, lr=lr,
               dampening=0.0, nesterov=nesterov, maximize=False, is_first_step=is_first_step)


def fused_adam_(params: list[torch.Tensor], grads: list[torch.Tensor],
                exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                steps: list[torch.Tensor], *, decoupled: bool, lr: float, beta1: float,
                beta2: float, weight_decay: float, eps: float) -> None:
    """``torch.optim.Adam``'s (``decoupled``: AdamW's) fused step, without amsgrad;
    ``steps`` already counts this step."""
    kernel = _FUSED_ADAMW if decoupled else _FUSED_ADAM
    assert kernel is not None
    kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2,
           weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)


def foreach_add_(tensors: Sequence[torch.Tensor], value: float) -> None:
    if _FOREACH_ADD is not None and FOREACH_ADD:
        _FOREACH_ADD(list(tensors), value)
        return
    for t in tensors:
        t.add_(value)


class _SchedulerView(torch.optim.Optimizer):
    """autodl's optimizer as a ``torch.optim.lr_scheduler`` class sees it: the same
    ``param_groups`` dicts (so the schedule sets the real lr) and ``defaults``.

    Not public API: it relies on the schedulers reading only those (true from torch 2.0 to
    2.14) and skips ``Optimizer.__init__``, which imports ``torch._dynamo`` (about 2 s).
    Public alternative: a real ``torch.optim`` optimizer, which the schedulers
    type-check for; not used for autodl's fast optimizers because of that import. A torch
    whose schedulers need more fails when the schedule is built (a trial error naming the
    attribute), and ``AUTODL_OPTIM=torch`` avoids it."""

    def __init__(self, optimizer: Any) -> None:  # no super().__init__: see above
        self.param_groups, self.defaults = optimizer.param_groups, optimizer.defaults
        # an empty state, as before; torch annotates Optimizer.state as a defaultdict
        self.state = {}  # type: ignore[assignment]


def scheduler_view(optimizer: Any) -> torch.optim.Optimizer:
    return _SchedulerView(optimizer)


def _check(probe: Callable[[], bool]) -> bool:
    """A kernel works when the probe runs and gives the documented update; any error
    (missing, renamed argument, changed signature) means it does not."""
    try:
        with torch.no_grad():
            return bool(probe())
    except Exception:  # a changed private API raises anything: TypeError, RuntimeError...
        return False


def _probe_sgd() -> bool:
    p, g, buf = torch.ones(1), torch.full((1,), 0.5), torch.zeros(1)
    fused_sgd_([p], [g], [buf], weight_decay=0.0, momentum=0.9, lr=0.1, nesterov=False,
               is_first_step=True)
    return abs(float(p) - 0.95) < 1e-6 and abs(float(buf) - 0.5) < 1e-6


def _probe_adam(decoupled: bool) -> bool:
    p, g = torch.ones(1), torch.full((1,), 0.5)
    m, v, step = torch.zeros(1), torch.zeros(1), torch.ones(())
    fused_adam_([p], [g], [m], [v], [step], decoupled=decoupled, lr=0.1, beta1=0.9,
                beta2=0.999, weight_decay=0.5, eps=1e-8)
    # Adam's first step moves by lr (the bias-corrected g / |g|); AdamW's decays first.
    expected = 1.0 * (1 - 0.1 * 0.5) - 0.1 if decoupled else 1.0 - 0.1
    return abs(float(p) - expected) < 1e-5 and abs(float(m) - 0.1 * (0.5 + 0.5 * (not decoupled))
                                                    ) < 1e-6


def _probe_foreach_add() -> bool:
    a, b = torch.zeros(()), torch.ones(())
    assert _FOREACH_ADD is not None
    _FOREACH_ADD([a, b], 1)
    return float(a) == 1.0 and float(b) == 2.0


FOREACH_ADD = _FOREACH_ADD is not None and _check(_probe_foreach_add)
FUSED: dict[str, bool] = {
    "sgd": _FUSED_SGD is not None and _check(_probe_sgd),
    "adam": _FUSED_ADAM is not None and _check(lambda: _probe_adam(False)),
    "adamw": _FUSED_ADAMW is not None and _check(lambda: _probe_adam(True)),
}
"""Which autodl optimizers may run their fused kernel with the installed torch."""
