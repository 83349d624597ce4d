"""The family registry: a torch-free spec per family, and a lazily imported builder.

The parent process decides which families fit the data and validates YAML against the
specs without importing torch; only ``create_model`` imports the family's module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autodl.errors import UsageError
from autodl.space._params import ParamSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODALITIES",
    "FamilySpec",
    "check_family",
    "create_model",
    "get_family",
    "list_families",
    "register_family",
]

MODALITIES = ("tabular", "sequence", "image", "text")


@dataclass(frozen=True)
class FamilySpec:
    """One architecture family: the modalities it takes and the parameters it accepts.

    ``builder`` is ``"module:function"``; the function is called as
    ``build(params, input_shape, n_outputs, modality) -> nn.Module`` where ``params`` has
    every key of ``params`` (defaults filled in) and ``input_shape`` excludes the batch.
    ``preflight`` (optional, ``"module:function"``) is called before trial 1 with
    ``({param: [values the space can pick]}, source)`` and raises UsageError, e.g. for a
    local file that does not exist.
    """

    name: str
    modalities: frozenset[str]
    params: Mapping[str, ParamSpec]
    builder: str
    description: str = ""
    notes: Mapping[str, str] = field(default_factory=dict)
    preflight: str = ""

    def supports(self, modality: str) -> bool:
        return modality in self.modalities


_REGISTRY: dict[str, FamilySpec] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add a family; a second family with the same name raises."""
    if spec.name in _REGISTRY:
        raise ValueError(f"family {spec.name!r} is already registered")
    unknown = set(spec.modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"family {spec.name!r}: unknown modalities {sorted(unknown)}")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtins() -> None:
    importlib.import_module("autodl.models._specs")


def list_families() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def get_family(name: str) -> FamilySpec:
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown family {name!r}; valid families: {', '.join(sorted(_REGISTRY))}"
        ) from None


def resolve_params(spec: FamilySpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the spec's defaults filled in (unknown keys raise)."""
    unknown = set(params) - set(spec.params)
    if unknown:
        raise UsageError(
            f"family {spec.name!r} has no parameter(s) {sorted(unknown)}; "
            f"valid: {', '.join(spec.params)}"
        )
    return {k: params.get(k, p.default) for k, p in spec.params.items()}


def create_model(
    name: str, params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int,
    modality: str,
) -> nn.Module:
    """Build family ``name`` for inputs of ``input_shape`` (no batch dim)."""
    spec = get_family(name)
    if not spec.supports(modality):
        raise UsageError(
            f"family {name!r} does not take {modality} data; it takes {sorted(spec.modalities)}"
        )
    module_name, func_name = spec.builder.split(":")
    build = getattr(importlib.import_module(module_name), func_name)
    return build(resolve_params(spec, params), tuple(input_shape), int(n_outputs), modality)


def check_family(name: str, params: Mapping[str, Any], source: str | None = None) -> None:
    """Run family ``name``'s preflight on the distributions a space gives its parameters
    (missing ones at their default); a family without one passes."""
    spec = get_family(name)
    if not spec.preflight:
        return
    values = {k: _possible_values(params[k]) if k in params else [p.default]
              for k, p in spec.params.items()}
    module_name, func_name = spec.preflight.split(":")
    getattr(importlib.import_module(module_name), func_name)(values, source)


def _possible_values(dist: Any) -> list[Any]:
    """A Fixed's value or a Categorical's choices (numeric ranges: none listed)."""
    if hasattr(dist, "choices"):
        return list(dist.choices)
    return [dist.value] if hasattr(dist, "value") else []
