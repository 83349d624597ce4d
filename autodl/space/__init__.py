"""The search space: one typed form (``SearchSpace``), and the YAML that maps onto it.

``load_space("quickstart")`` or ``load_space("my_space.yaml")`` reads and validates a
file; ``space.sample(trial)`` suggests one trial's resolved config. The YAML format is
described in :mod:`autodl.space._load` and at the top of ``search_spaces/quickstart.yaml``.
"""

from autodl.params import Categorical, Fixed, Float, Int, ParamSpec
from autodl.space._load import list_spaces, load_space, parse_space, resolve_objectives
from autodl.space._space import Defaults, Objective, SearchSpace, Section, flatten_config

__all__ = [
    "Categorical",
    "Defaults",
    "Fixed",
    "Float",
    "Int",
    "Objective",
    "ParamSpec",
    "SearchSpace",
    "Section",
    "flatten_config",
    "list_spaces",
    "load_space",
    "parse_space",
    "resolve_objectives",
]
