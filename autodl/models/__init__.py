"""Architecture families, by name (README: *Search spaces*), and the registry that plugins
add their own to."""

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
