"""What the training loop accepts (torch-free): optimizers, lr schedules, training options.

``OPTIMIZERS`` and ``SCHEDULES`` are autodl's own (fast, batchable); ``OPTIMIZER_OPTIONS``
and ``SCHEDULE_OPTIONS`` add every ``torch.optim`` optimizer and ``lr_scheduler`` schedule,
read off the installed torch only when a space names one (``autodl.train._torch_specs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from autodl.params import ParamSpec
from autodl.params import ParamSpec as P

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_COMMON",
    "OPTIMIZER_OPTIONS",
    "SCHEDULES",
    "SCHEDULE_COMMON",
    "SCHEDULE_OPTIONS",
    "TRAINING",
    "NotAnOption",
    "option_defaults",
]

OPTIMIZER_COMMON = {
    "lr": P("float", 1e-3, low=0.0, low_open=True, high=10.0, help="learning rate"),
    "weight_decay": P("float", 0.0, low=0.0, high=1.0),
}

_BETAS = {
    "beta1": P("float", 0.9, low=0.0, high=1.0, high_open=True),
    "beta2": P("float", 0.999, low=0.0, high=1.0, high_open=True),
    "eps": P("float", 1e-8, low=0.0, low_open=True, high=1.0),
}

OPTIMIZERS = {
    "sgd": {
        "momentum": P("float", 0.9, low=0.0, high=1.0, high_open=True),
        "nesterov": P("bool", False),
    },
    "adam": dict(_BETAS),
    "adamw": dict(_BETAS),
    "rmsprop": {
        "momentum": P("float", 0.0, low=0.0, high=1.0, high_open=True),
        "alpha": P("float", 0.99, low=0.0, high=1.0, high_open=True),
    },
}

SCHEDULE_COMMON = {
    "warmup_epochs": P("int", 0, low=0, high=1000, help="linear warm-up from lr/10"),
}

SCHEDULES = {
    "constant": {},
    "cosine": {"min_lr_factor": P("float", 0.0, low=0.0, high=1.0)},
    "step": {
        "step_size": P("int", 10, low=1, high=10000, help="epochs between decays"),
        "gamma": P("float", 0.1, low=0.0, low_open=True, high=1.0),
    },
    "onecycle": {
        "pct_start": P("float", 0.3, low=0.0, low_open=True, high=1.0, high_open=True),
    },
}

TRAINING = {
    "batch_size": P("int", 64, low=1, high=1 << 20),
    "label_smoothing": P("float", 0.0, low=0.0, high=1.0, high_open=True),
    "grad_clip": P("float", 0.0, low=0.0, help="max gradient norm; 0: off"),
    "early_stopping": P("int", 0, low=0, high=10000,
                        help="stop after this many epochs without improvement; 0: off"),
    "augment": P("bool", False,
                 help="modality's standard augmentation (image: shifts; sequence/tabular: noise)"),
    "hflip": P("bool", False, help="with augment, images: random horizontal flips too (photos, "
               "not digits)"),
}


class NotAnOption(KeyError):
    """A name that is not an option, or a torch one autodl cannot train with (``reason``)."""

    def __init__(self, name: str, reason: str | None = None) -> None:
        super().__init__(name)
        self.reason = reason


class _Params(Mapping[str, ParamSpec]):
    """An option's parameters: autodl's table first (torch-free), then the torch
    signature's, read on the first key the table lacks. A key torch has but a space
    cannot set raises ``NotAnOption`` with the reason."""

    def __init__(self, own: Mapping[str, ParamSpec],
                 torch_specs: Callable[[], Mapping[str, ParamSpec | str]] | None,
                 hide: tuple[str, ...] = ()) -> None:
        self.own, self.torch_specs, self.hide = own, torch_specs, hide

    def _extra(self) -> dict[str, ParamSpec | str]:
        if self.torch_specs is None:
            return {}
        return {k: v for k, v in self.torch_specs().items()
                if k not in self.own and k not in self.hide}

    def __getitem__(self, key: str) -> ParamSpec:
        if key in self.own:
            return self.own[key]
        spec = self._extra().get(key)
        if spec is None:
            raise KeyError(key)
        if isinstance(spec, str):
            raise NotAnOption(key, spec)
        return spec

    def __contains__(self, key: object) -> bool:
        return key in self.own or (
            isinstance(key, str) and isinstance(self._extra().get(key), ParamSpec))

    def __iter__(self) -> Iterator[str]:
        yield from self.own
        yield from (k for k, v in self._extra().items() if isinstance(v, ParamSpec))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Options(Mapping[str, Mapping[str, ParamSpec]]):
    """autodl's options by name, then torch's (case-insensitive, imported on first use)."""

    def __init__(self, own: Mapping[str, Mapping[str, ParamSpec]], kind: str) -> None:
        self.own, self.kind = own, kind

    def _torch(self) -> tuple[dict[str, type], dict[str, str], Callable[[str], Any]]:
        from autodl.train import _torch_specs as t

        if self.kind == "optimizer":
            return t.torch_optimizers(), t.UNSUPPORTED_OPTIMIZERS, t.optimizer_specs
        return t.torch_schedules(), t.UNSUPPORTED_SCHEDULES, t.schedule_specs

    def canonical(self, name: str) -> str:
        """autodl's own name when ``name`` is one in another case (``SGD`` -> ``sgd``)."""
        return name.lower() if name.lower() in self.own else name

    def is_own(self, name: str) -> bool:
        return name.lower() in self.own

    def __getitem__(self, name: str) -> Mapping[str, ParamSpec]:
        if not isinstance(name, str):
            raise KeyError(name)
        low = name.lower()
        if low in self.own:
            torch_specs = (lambda: self._torch()[2](low)) if self.kind == "optimizer" else None
            # betas: autodl's adam/adamw take beta1 and beta2
            return _Params(self.own[low], torch_specs, hide=("betas",))
        classes, unsupported, specs = self._torch()
        if low in unsupported or classes is None or low not in classes:
            raise NotAnOption(name, unsupported.get(low))
        return _Params({}, lambda: specs(low))

    def __iter__(self) -> Iterator[str]:
        yield from self.own
        classes, unsupported, _ = self._torch()
        yield from (cls.__name__ for low, cls in sorted(classes.items())
                    if low not in self.own and low not in unsupported)

    def __len__(self) -> int:
        return sum(1 for _ in self)


OPTIMIZER_OPTIONS = _Options(OPTIMIZERS, "optimizer")
SCHEDULE_OPTIONS = _Options(SCHEDULES, "schedule")


def option_defaults(specs: Mapping[str, ParamSpec], given: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """The defaults a config leaves out: autodl's tables' all, a torch option's those with
    a default (its required ones come from the space; ``beta1``/``beta2`` only alias
    ``betas``)."""
    own = specs.own if isinstance(specs, _Params) else specs
    out = {k: p.default for k, p in own.items()}
    if isinstance(specs, _Params) and not specs.own:
        out.update({k: p.default for k, p in specs.items()
                    if not p.required and k not in ("beta1", "beta2")})
    return {k: v for k, v in out.items() if k not in given}
