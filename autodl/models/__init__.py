"""Architecture families, by name (README: *Search spaces*), and the registry that plugins
add their own to."""

from typing import TYPE_CHECKING

from autodl._lazy import lazy_attributes
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

if TYPE_CHECKING:  # the lazy attributes, as type checkers see them (X as X: exported)
    from autodl.models._hf import load_tokenizer as load_tokenizer
    from autodl.models._hf import resolve_local as resolve_local

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "load_tokenizer": "autodl.models._hf",
    "resolve_local": "autodl.models._hf",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
