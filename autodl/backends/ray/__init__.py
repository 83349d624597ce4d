"""The Ray Tune backend (``--backend ray``): the same YAML space, trials on a Ray cluster.

``_backend`` runs the experiment (``RayBackend``), ``_driver`` turns Tune's events into
autodl's and records every trial in the Optuna study, ``_space`` maps the search space to
Tune (define-by-run searcher, PBT mutations), ``_trainable`` is what Ray's workers run.
Nothing here imports ``ray`` until a name that needs it is used (ray is an optional extra).
"""

from typing import TYPE_CHECKING

from autodl._lazy import lazy_attributes

__all__ = ["PbtMutations", "RayBackend", "apply_optimizer_values", "resolve_trial",
           "trial_dir_name"]

if TYPE_CHECKING:  # the lazy attributes, as type checkers see them (X as X: exported)
    from autodl.backends.ray._backend import RayBackend as RayBackend
    from autodl.backends.ray._space import PbtMutations as PbtMutations
    from autodl.backends.ray._space import resolve_trial as resolve_trial
    from autodl.backends.ray._trainable import apply_optimizer_values as apply_optimizer_values
    from autodl.backends.ray._trainable import trial_dir_name as trial_dir_name

_LAZY = {
    "PbtMutations": "autodl.backends.ray._space",
    "RayBackend": "autodl.backends.ray._backend",
    "apply_optimizer_values": "autodl.backends.ray._trainable",
    "resolve_trial": "autodl.backends.ray._space",
    "trial_dir_name": "autodl.backends.ray._trainable",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
