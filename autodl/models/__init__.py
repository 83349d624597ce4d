"""Architecture families, by name (see DESIGN.md's family table)."""

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
from autodl.space._params import ParamSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODALITIES",
    "FamilySpec",
    "ParamSpec",
    "check_family",
    "create_model",
    "get_family",
    "list_families",
    "plugin_families",
    "register_family",
    "resolve_params",
]
