"""The family registry: a torch-free spec per family, and a lazily imported builder.

The parent process decides which families fit the data and validates YAML against the
specs without importing torch; only ``create_model`` imports the family's module.

Other packages add families through the ``autodl.families`` entry point group, loaded on
the registry's first use in every process (the search, each worker, ``autodl export``)::

    [project.entry-points."autodl.families"]
    my_family = "my_package.autodl_families"          # a module that calls register_family
    # or "my_package:families": a FamilySpec, or a callable returning one or a list of them
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autodl.errors import UsageError
from autodl.params import ParamSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODALITIES",
    "FamilySpec",
    "check_family",
    "create_model",
    "get_family",
    "list_families",
    "plugin_families",
    "register_family",
]

MODALITIES = ("tabular", "sequence", "image", "text")
ENTRY_POINT_GROUP = "autodl.families"


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
_PLUGINS: dict[str, str] = {}  # family -> the entry point that registered it
_plugin_state: dict[str, Any] = {"loaded": False, "error": None}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add a family; a second family with the same name raises."""
    if spec.name == "ensemble":
        raise ValueError("family name 'ensemble' is reserved for autodl's ensembles")
    if spec.name in _REGISTRY:
        raise ValueError(f"family {spec.name!r} is already registered")
    unknown = set(spec.modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"family {spec.name!r}: unknown modalities {sorted(unknown)}")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtins() -> None:
    """The built-in families, then the installed plugins' (once per process; a broken
    plugin's error is raised again on every use, never skipped silently)."""
    importlib.import_module("autodl.models._specs")
    if not _plugin_state["loaded"]:
        _plugin_state["loaded"] = True  # a plugin may use the registry while it loads
        try:
            _load_plugins()
        except UsageError as exc:
            _plugin_state["error"] = exc
    if _plugin_state["error"] is not None:
        raise _plugin_state["error"]


def _load_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = (f"{ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}"
                 + (f", from {ep.dist.name} {ep.dist.version})" if ep.dist else ")"))
        before = set(_REGISTRY)
        try:
            _register_from(ep.load())
        except Exception as exc:
            raise UsageError(f"{where} failed: {type(exc).__name__}: {exc}; fix or uninstall "
                             "that package", key="families") from exc
        _PLUGINS.update({name: where for name in sorted(set(_REGISTRY) - before)})


def _register_from(target: Any) -> None:
    """An entry point's target: a module (importing it registered its families), a
    FamilySpec, or a callable that registers them or returns one or a list of them."""
    if isinstance(target, types.ModuleType):
        return
    if callable(target):
        target = target()
    specs = [target] if isinstance(target, FamilySpec) else list(target or [])
    for spec in specs:
        if not isinstance(spec, FamilySpec):
            raise TypeError(f"expected FamilySpec objects, got {spec!r}")
        register_family(spec)


def plugin_families() -> dict[str, str]:
    """Families added by installed packages: name -> the entry point that added it."""
    _ensure_builtins()
    return dict(_PLUGINS)


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
    """Build family ``name`` for inputs of ``input_shape`` (no batch dim); ``"ensemble"``
    builds the weighted average of trained members (``autodl.models.ensemble``), which no
    search space samples."""
    if name == "ensemble":
        from autodl.models.ensemble import build as build_ensemble

        return build_ensemble(params, tuple(input_shape), int(n_outputs), modality,
                              create_model)
    spec = get_family(name)
    if not spec.supports(modality):
        raise UsageError(
            f"family {name!r} does not take {modality} data; it takes {sorted(spec.modalities)}"
        )
    module_name, func_name = spec.builder.split(":")
    build = getattr(importlib.import_module(module_name), func_name)
    model: nn.Module = build(resolve_params(spec, params), tuple(input_shape), int(n_outputs),
                             modality)
    return model


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
