"""Architecture families, by name (README: *Search spaces*), and the registry that plugins
add their own to."""

import importlib
from typing import Any

from autodl.models._registry import (
    ENTRY_POINT_GROUP,
    MODALITIES,
    FamilySpec,
    check_family,
    create_model,
    get_family,
    list_families,
    plugin_families,
    register_family,
    resolve_params,
)
from autodl.params import ParamSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODALITIES",
    "FamilySpec",
    "ParamSpec",
    "check_family",
    "create_model",
    "get_family",
    "list_families",
    "load_tokenizer",
    "plugin_families",
    "register_family",
    "resolve_local",
    "resolve_params",
]

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "load_tokenizer": "autodl.models._hf",
    "resolve_local": "autodl.models._hf",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
