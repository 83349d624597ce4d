"""A trial's config as MLflow params: flattened, within MLflow's limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from autodl.space import flatten_config

__all__ = ["mlflow_params"]


def mlflow_params(config: Mapping[str, Any]) -> dict[str, str]:
    """Flattened params within MLflow's limits (key 250 chars, value 6000 chars)."""
    out = {}
    for key, value in flatten_config(config).items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        out[key[:250]] = text[:6000]
    return out
