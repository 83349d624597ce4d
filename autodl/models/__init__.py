"""Architecture families, by name (see DESIGN.md's family table)."""

from autodl.models._registry import (
    MODALITIES,
    FamilySpec,
    check_family,
    create_model,
    get_family,
    list_families,
    register_family,
    resolve_params,
)

__all__ = [
    "MODALITIES",
    "FamilySpec",
    "check_family",
    "create_model",
    "get_family",
    "list_families",
    "register_family",
    "resolve_params",
]
