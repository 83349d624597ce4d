"""Search-space YAML -> the typed :class:`~autodl.space.SearchSpace`, validated before trial 1.

The format (``search_spaces/quickstart.yaml`` carries the same description)::

    name: quickstart              # optional, default: the file's stem
    description: one line         # optional, shown by `autodl spaces list`
    defaults:                     # optional; CLI flags override them
      data: digits                #   keys: data, trials, epochs, timeout, sampler, pruner, seed,
                                  #   cv (folds, >= 2), holdout (true: one validation split)
      trials: 12
    objectives: [accuracy]        # optional; metric names or {metric: x, direction: minimize};
                                  #   several = multi-objective, e.g. [accuracy, params]
    families:                     # required, at least one; keys are registered family names
      mlp:
        depth: {type: int, low: 1, high: 3}
        width: {low: 64, high: 512, log: true}   # int when low and high are ints, else float
        activation: [relu, gelu]                 # a list is a categorical
        norm: none                               # a single value is fixed
      cnn: {}                                    # every parameter at its default (null too)
    optimizer:                    # optional; default: adamw at its default lr
      lr: {low: 1.0e-4, high: 1.0e-2, log: true} # shared by every option (OPTIMIZER_COMMON)
      options:                    # a mapping name -> parameters, a list of names, or one name
        adamw: {beta2: [0.99, 0.999]}
        sgd: {lr: {low: 0.01, high: 0.1, log: true}, momentum: {low: 0.8, high: 0.99}}
    schedule:                     # optional; default: constant
      warmup_epochs: {low: 0, high: 2}           # SCHEDULE_COMMON
      options: [cosine, constant]
    training:                     # optional; keys from TRAINING
      batch_size: [64, 128]

A distribution mapping takes ``type`` (float, int, categorical, fixed), ``low``, ``high``,
``log``, ``step``, ``choices`` and ``value``. An option may override a shared parameter
(``sgd: {lr: ...}`` above). Every name is checked against the spec tables and every value
against its :class:`~autodl.params.ParamSpec`; each error is a
:class:`~autodl.errors.UsageError` naming file, line, column, the dotted key, the rule and
the value received.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autodl.errors import UsageError
from autodl.params import Categorical, Distribution, Fixed, Float, Int, ParamSpec
from autodl.space._space import (
    CLASSIFICATION_METRICS,
    COST_METRICS,
    METRIC_DIRECTIONS,
    REGRESSION_METRICS,
    Defaults,
    Objective,
    SearchSpace,
    Section,
)
from autodl.space._yaml import MAX_YAML_BYTES, YNode, load_yaml, read_bounded, show
from autodl.train import (
    OPTIMIZER_COMMON,
    OPTIMIZER_OPTIONS,
    SCHEDULE_COMMON,
    SCHEDULE_OPTIONS,
    TRAINING,
    NotAnOption,
)

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "SHIPPED_DIR",
    "list_spaces",
    "load_space",
    "parse_space",
    "resolve_objectives",
]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
PRUNERS = ("hyperband", "successive_halving", "median", "percentile", "none")
TOP_KEYS = ("name", "description", "defaults", "objectives", "families", "optimizer",
            "schedule", "training")
DEFAULT_KEYS = ("data", "trials", "epochs", "timeout", "sampler", "pruner", "seed", "cv",
                "holdout")
DIST_TYPES = ("float", "int", "categorical", "fixed")
_TYPE_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
    "fixed": ("type", "value"),
}
DIST_KEYS = ("type", "low", "high", "log", "step", "choices", "value")


class _Invalid(Exception):
    """A problem at a node; ``parse_space`` turns it into a UsageError with the file name."""

    def __init__(self, message: str, node: YNode, *, key: str | None = None,
                 at_key: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.key = key or node.path or None
        self.line = node.key_line if at_key else node.line
        self.column = node.key_column if at_key else node.column

    def usage_error(self, source: str) -> UsageError:
        return UsageError(self.message, file=source, line=self.line, column=self.column,
                          key=self.key)


# ---------------------------------------------------------------- public functions


def parse_space(text: str, source: str = "<string>") -> SearchSpace:
    """Validate search-space YAML ``text``; ``source`` names it in error messages."""
    root = load_yaml(text, source)
    if root is None or not root.is_map:
        got = "an empty document" if root is None else show(root.value)
        raise UsageError(f"the top level must be a mapping with at least 'families', "
                         f"but got {got}", file=source,
                         line=root.line if root else 1, column=root.column if root else 1)
    try:
        return _build(root, text, source)
    except _Invalid as exc:
        raise exc.usage_error(source) from None


def load_space(name_or_path: str, max_bytes: int = MAX_YAML_BYTES) -> SearchSpace:
    """A space from a YAML path, or by the stem of a shipped file (``"quickstart"``); a file
    over ``max_bytes`` is refused before it is parsed."""
    path = Path(name_or_path)
    shipped = _shipped()
    if path.is_file():
        return parse_space(read_bounded(path, str(name_or_path), max_bytes), str(name_or_path))
    if name_or_path in shipped:
        return _read(shipped[name_or_path], str(shipped[name_or_path]))
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1 or path.exists():
        hint = " (it is a directory)" if path.is_dir() else ""
        if len(path.parts) == 1 and path.stem in shipped:
            hint = f"; the shipped space is named without the suffix: {path.stem!r}"
        raise UsageError(f"no search-space file at {str(name_or_path)!r}{hint}")
    raise UsageError(f"unknown search space {name_or_path!r}; give a path to a YAML file or "
                     f"one of the shipped spaces: {', '.join(shipped)}"
                     f"{_did_you_mean(name_or_path, shipped)}")


def list_spaces() -> list[tuple[str, str]]:
    """(name, description) of every space shipped in ``autodl/search_spaces/``."""
    out = []
    for name, path in _shipped().items():
        try:
            root = load_yaml(path.read_text(encoding="utf-8"), str(path))
            node = root.value.get("description") if root is not None and root.is_map else None
            description = node.value if node is not None and node.kind == "str" else ""
        except (OSError, UnicodeDecodeError, UsageError) as exc:
            description = f"(does not load: {exc})"
        out.append((name, description))
    return out


def resolve_objectives(space: SearchSpace, task: str) -> tuple[Objective, ...]:
    """The space's objectives checked against ``task``, or the task's default metric."""
    fitting = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
    if task not in fitting:
        raise ValueError(f"unknown task {task!r}; expected classification or regression")
    if not space.objectives:
        metric = "accuracy" if task == "classification" else "rmse"
        return (Objective(metric, METRIC_DIRECTIONS[metric]),)
    valid = (*fitting[task], *COST_METRICS)
    for objective in space.objectives:
        if objective.metric not in valid:
            raise UsageError(
                f"metric {objective.metric!r} does not fit a {task} task; "
                f"valid for {task}: {', '.join(valid)}",
                file=space.source, line=_line_of(space.source_text, "objectives"),
                column=1, key="objectives",
            )
    return space.objectives


# ---------------------------------------------------------------- files


def _shipped() -> dict[str, Path]:
    files = sorted([*SHIPPED_DIR.glob("*.yaml"), *SHIPPED_DIR.glob("*.yml")])
    return {p.stem: p for p in files}


def _read(path: Path, source: str) -> SearchSpace:
    return parse_space(read_bounded(path, source), source)


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^{re.escape(key)}\s*:", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _default_name(source: str) -> str:
    return "space" if source.startswith("<") else Path(source).stem


# ---------------------------------------------------------------- top level


def _build(root: YNode, text: str, source: str) -> SearchSpace:
    top = root.value
    _check_keys(root, TOP_KEYS, "top-level key")
    if "families" not in top:
        raise _Invalid("'families' is required: a mapping from family name to its "
                       "parameters, e.g. 'families: {mlp: {}}'", root, key="families")
    return SearchSpace(
        name=_text(top.get("name")) or _default_name(source),
        description=_text(top.get("description")) or "",
        defaults=_defaults(top.get("defaults")),
        objectives=_objectives(top.get("objectives")),
        families=_families(top["families"]),
        optimizer=_section(top.get("optimizer"), OPTIMIZER_COMMON, OPTIMIZER_OPTIONS, "adamw"),
        schedule=_section(top.get("schedule"), SCHEDULE_COMMON, SCHEDULE_OPTIONS, "constant"),
        training=_params(top.get("training"), TRAINING),
        source=source,
        source_text=text,
    )


def _given(node: YNode | None) -> YNode | None:
    """``node``, or None when it is missing or YAML's null."""
    return None if node is None or node.kind == "null" else node


def _text(node: YNode | None) -> str | None:
    node = _given(node)
    if node is None:
        return None
    if node.kind != "str":
        raise _Invalid(f"must be a string, but got {show(node.value)}", node)
    text: str = node.value  # its kind is str
    return text


def _did_you_mean(word: Any, options: Iterable[Any]) -> str:
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def _check_keys(node: YNode, allowed: Iterable[str], what: str, key: str | None = None) -> None:
    allowed = tuple(allowed)
    for name, child in node.value.items():
        if name not in allowed:
            raise _Invalid(f"unknown {what} {name!r}; valid: {', '.join(allowed)}"
                           f"{_did_you_mean(name, allowed)}", child, key=key, at_key=True)


def _require_map(node: YNode, what: str) -> None:
    if not node.is_map:
        raise _Invalid(f"must be {what}, but got {show(node.value)}", node)


# ---------------------------------------------------------------- defaults, objectives


def _defaults(node: YNode | None) -> Defaults:
    node = _given(node)
    if node is None:
        return Defaults()
    _require_map(node, "a mapping of run settings (" + ", ".join(DEFAULT_KEYS) + ")")
    _check_keys(node, DEFAULT_KEYS, "key in 'defaults'")
    return Defaults(**{k: _DEFAULT_CHECKS[k](child) for k, child in node.value.items()})


def _positive_int(node: YNode) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"must be a positive integer, but got {show(value)}", node)
    return value


def _seed(node: YNode) -> int | None:
    value = node.value
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 0):
        raise _Invalid(f"must be a non-negative integer or null, but got {show(value)}", node)
    return value


def _timeout(node: YNode) -> float | None:
    value = node.value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        0 < value < math.inf
    ):
        raise _Invalid(f"must be a positive number of seconds or null, but got {show(value)}",
                       node)
    return float(value)


def _one_of(options: tuple[str, ...], null: str | None = None) -> Any:
    def check(node: YNode) -> str:
        if node.value is None and null is not None:
            return null
        if node.value not in options or node.kind != "str":
            raise _Invalid(f"must be one of {', '.join(options)}, but got {show(node.value)}"
                           f"{_did_you_mean(node.value, options)}", node)
        text: str = node.value  # its kind is str
        return text
    return check


_DEFAULT_CHECKS = {
    "data": _text,
    "trials": _positive_int,
    "epochs": _positive_int,
    "timeout": _timeout,
    "sampler": _one_of(SAMPLERS),
    "pruner": _one_of(PRUNERS, null="none"),
    "seed": _seed,
    "cv": lambda node: _at_least(node, 2),
    "holdout": lambda node: _boolean(node),
}


def _at_least(node: YNode, low: int) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Invalid(f"must be an integer >= {low}, but got {show(value)}", node)
    return value


def _boolean(node: YNode) -> bool:
    if not isinstance(node.value, bool):
        raise _Invalid(f"must be true or false, but got {show(node.value)}", node)
    return node.value


def _objectives(node: YNode | None) -> tuple[Objective, ...]:
    node = _given(node)
    if node is None:
        return ()
    items = node.value if node.is_seq else [node]
    if not items:
        raise _Invalid("needs at least one metric; leave 'objectives' out for the task's "
                       "default (accuracy or rmse)", node)
    objectives = tuple(_objective(item) for item in items)
    seen: set[str] = set()
    for item, objective in zip(items, objectives, strict=True):
        if objective.metric in seen:
            raise _Invalid(f"metric {objective.metric!r} is listed twice", item)
        seen.add(objective.metric)
    if seen <= set(COST_METRICS):
        raise _Invalid(f"needs a quality metric besides the costs {', '.join(COST_METRICS)}; "
                       f"got only {', '.join(seen)}", node)
    return objectives


def _objective(node: YNode) -> Objective:
    if not node.is_map:
        metric = _metric(node)
        return Objective(metric, METRIC_DIRECTIONS[metric])
    _check_keys(node, ("metric", "direction"), "objective key")
    if "metric" not in node.value:
        raise _Invalid("an objective mapping needs 'metric'", node)
    metric = _metric(node.value["metric"])
    direction = node.value.get("direction")
    if direction is None:
        return Objective(metric, METRIC_DIRECTIONS[metric])
    return Objective(metric, _one_of(("maximize", "minimize"))(direction))


def _metric(node: YNode) -> str:
    valid = tuple(METRIC_DIRECTIONS)
    if node.kind != "str" or node.value not in valid:
        raise _Invalid(f"unknown metric {show(node.value)}; valid metrics: {', '.join(valid)}"
                       f"{_did_you_mean(node.value, valid)}", node)
    text: str = node.value  # its kind is str
    return text


# ---------------------------------------------------------------- sections


def _families(node: YNode) -> Section:
    from autodl.models import get_family, list_families  # the registry imports us

    if not node.is_map or not node.value:
        raise _Invalid("needs at least one family: a mapping from family name to its "
                       f"parameters, but got {show(node.value)}", node)
    valid = list_families()
    options = {}
    for name, child in node.value.items():
        if name not in valid:
            raise _Invalid(f"unknown family {name!r}; valid families: {', '.join(valid)}"
                           f"{_did_you_mean(name, valid)}", child, at_key=True)
        options[name] = _params(child, get_family(name).params)
    return Section(options=options)


def _section(node: YNode | None, common: Mapping[str, ParamSpec],
             table: Mapping[str, Mapping[str, ParamSpec]], default: str) -> Section:
    node = _given(node)
    if node is None:
        return Section(options={default: {}})
    _require_map(node, f"a mapping of shared parameters ({', '.join(common)}) and 'options'")
    own_table = getattr(table, "own", table)  # autodl's options: no torch import here
    for name, child in node.value.items():
        if name in common or name == "options":
            continue
        owners = [o for o, specs in own_table.items() if name in specs]
        if owners:
            raise _Invalid(f"{name!r} belongs to an option, not to the whole section; put it "
                           f"under options.{owners[0]}", child, at_key=True)
    _check_keys(node, (*common, "options"), "key")
    shared = {k: _distribution(c, common[k]) for k, c in node.value.items() if k != "options"}
    options_node = _given(node.value.get("options"))
    if options_node is None:
        return Section(options={default: {}}, shared=shared)
    return Section(options=_options(options_node, common, table), shared=shared)


def _options(node: YNode, common: Mapping[str, ParamSpec],
             table: Mapping[str, Mapping[str, ParamSpec]]) -> dict[str, dict[str, Distribution]]:
    if node.is_map:
        entries = [(name, child, True) for name, child in node.value.items()]
    else:
        entries = [(item.value, item, False) for item in (node.value if node.is_seq else [node])]
    if not entries:
        raise _Invalid(f"needs at least one option of {', '.join(table)}", node)
    out: dict[str, dict[str, Distribution]] = {}
    for name, child, with_params in entries:
        if not with_params and child.kind != "str":
            raise _Invalid(f"each option must be a name, but got {show(child.value)}", child)
        specs = _option(table, name, child, with_params)
        canonical = table.canonical(name) if hasattr(table, "canonical") else name
        if any(n.lower() == canonical.lower() for n in out):
            raise _Invalid(f"option {name!r} is listed twice", child)
        params = _params(child, _Merged(common, specs)) if with_params else {}
        _check_option(table, canonical, specs, params, child, with_params)
        out[canonical] = params
    return out


def _option(table: Mapping[str, Mapping[str, ParamSpec]], name: str, node: YNode,
            at_key: bool) -> Mapping[str, ParamSpec]:
    try:
        return table[name]
    except NotAnOption as exc:
        if exc.reason:
            raise _Invalid(f"{name!r} cannot be used: {exc.reason}", node,
                           at_key=at_key) from None
    except KeyError:
        pass
    raise _Invalid(f"unknown option {show(name)}; valid options: {', '.join(table)}"
                   f"{_did_you_mean(name, table)}", node, at_key=at_key)


def _check_option(table: Any, name: str, specs: Mapping[str, ParamSpec],
                  params: Mapping[str, Distribution], node: YNode, with_params: bool) -> None:
    """A torch option's arguments without a default are required; ``betas`` and
    ``beta1``/``beta2`` exclude each other."""
    if hasattr(table, "is_own") and table.is_own(name):
        return
    missing = [k for k, spec in specs.items() if spec.required and k not in params]
    if missing:
        raise _Invalid(f"{name} needs {', '.join(map(repr, missing))} (torch gives no "
                       f"default), e.g. '{name}: {{{missing[0]}: ...}}'", node,
                       at_key=with_params)
    if "betas" in params and ("beta1" in params or "beta2" in params):
        raise _Invalid("give either 'betas' or 'beta1'/'beta2', not both", node,
                       at_key=with_params)


class _Merged(Mapping[str, ParamSpec]):
    """The section's shared parameters, then the option's (looked up only when needed)."""

    def __init__(self, common: Mapping[str, ParamSpec], own: Mapping[str, ParamSpec]) -> None:
        self.common, self.own = common, own

    def __getitem__(self, key: str) -> ParamSpec:
        return self.common[key] if key in self.common else self.own[key]

    def __iter__(self) -> Any:
        yield from self.common
        yield from (k for k in self.own if k not in self.common)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _params(node: YNode | None, specs: Mapping[str, ParamSpec]) -> dict[str, Distribution]:
    node = _given(node)
    if node is None:
        return {}
    _require_map(node, "a mapping from parameter name to a value, list or distribution")
    out = {}
    for name, child in node.value.items():
        try:
            spec = specs[name]
        except NotAnOption as exc:
            raise _Invalid(f"{name!r} cannot be set in a space: {exc.reason}", child,
                           at_key=True) from None
        except KeyError:
            raise _Invalid(f"unknown parameter {name!r}; valid parameters here: "
                           f"{', '.join(specs) or '(none)'}{_did_you_mean(name, specs)}",
                           child, at_key=True) from None
        out[name] = _distribution(child, spec)
    return out


# ---------------------------------------------------------------- distributions


def _distribution(node: YNode, spec: ParamSpec) -> Distribution:
    if node.is_map:
        return _from_mapping(node, spec)
    if node.is_seq and spec.kind == "tuple" and not any(i.is_seq for i in node.value):
        _check_value(node, spec, "the value", node.path)  # betas: [0.9, 0.99]
        return Fixed(tuple(node.plain()))
    if node.is_seq:
        return _categorical(node, spec, node.path)
    if node.value is None:
        raise _Invalid(f"needs a value; leave the key out to use the default "
                       f"({show(spec.default)})", node)
    _check_value(node, spec, "the value", node.path)
    return Fixed(node.value)


def _from_mapping(node: YNode, spec: ParamSpec) -> Distribution:
    fields = node.value
    _check_keys(node, DIST_KEYS, "distribution key", key=node.path)
    kind = _dist_type(node, spec)
    for name, child in fields.items():
        if name not in _TYPE_KEYS[kind]:
            raise _Invalid(f"{name!r} does not apply to {_a(kind)} distribution; its keys: "
                           f"{', '.join(_TYPE_KEYS[kind])}", child, key=node.path, at_key=True)
    if kind == "fixed":
        if "value" not in fields:
            raise _Invalid("a fixed distribution needs 'value'", node)
        _check_value(fields["value"], spec, "the value", node.path)
        return Fixed(fields["value"].value)
    if kind == "categorical":
        if "choices" not in fields or not fields["choices"].is_seq:
            raise _Invalid("a categorical distribution needs 'choices', a list", node)
        return _categorical(fields["choices"], spec, node.path)
    return _numeric(node, spec, kind)


def _dist_type(node: YNode, spec: ParamSpec) -> str:
    fields = node.value
    if "type" in fields:
        kind: str = fields["type"].value
        if kind not in DIST_TYPES or fields["type"].kind != "str":
            raise _Invalid(f"type must be one of {', '.join(DIST_TYPES)}, but got {show(kind)}"
                           f"{_did_you_mean(kind, DIST_TYPES)}", fields["type"], key=node.path)
    elif "choices" in fields or "value" in fields:
        kind = "categorical" if "choices" in fields else "fixed"
    else:
        bounds = [fields[k].value for k in ("low", "high") if k in fields]
        ints = all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        kind = "int" if ints and spec.kind != "float" else "float"
    if kind in ("float", "int") and spec.kind in ("choice", "bool", "str", "tuple"):
        raise _Invalid(f"{_a(kind)} range does not fit a parameter that must be "
                       f"{spec.rule()}; give a list of choices or a single value", node)
    if kind == "float" and spec.kind == "int":
        got = ", ".join(f"{k}={fields[k].value!r}" for k in ("low", "high") if k in fields)
        raise _Invalid(f"an integer parameter needs an int range (integer low and high), but "
                       f"got a float range ({got or 'type float'})", fields.get("type", node),
                       key=node.path)
    return kind


def _numeric(node: YNode, spec: ParamSpec, kind: str) -> Distribution:
    fields, key = node.value, node.path
    for bound in ("low", "high"):
        if bound not in fields:
            raise _Invalid(f"{_a(kind)} distribution needs 'low' and 'high'; '{bound}' is "
                           "missing", node)
    low = _number(fields["low"], key, "low", kind)
    high = _number(fields["high"], key, "high", kind)
    step = _number(fields["step"], key, "step", kind) if "step" in fields else None
    log = _flag(fields.get("log"), key, "log")
    _check_range(node, spec, kind, low, high, log, step)
    if kind == "int":  # _number: the bounds and step of an int range are ints
        return Int(int(low), int(high), log=log, step=int(step or 1))
    return Float(float(low), float(high), log=log, step=None if step is None else float(step))


def _check_range(node: YNode, spec: ParamSpec, kind: str, low: Any, high: Any, log: bool,
                 step: Any) -> None:
    f, key = node.value, node.path
    if low > high:
        raise _Invalid(f"`low <= high` must hold, but got low={low}, high={high}",
                       f["high"], key=key)
    if step is not None and step <= 0:
        raise _Invalid(f"`step > 0` must hold, but got step={step}", f["step"], key=key)
    if log and low <= 0:
        raise _Invalid(f"`low > 0` must hold for log=True, but got low={low}", f["low"],
                       key=key)
    if log and step is not None and kind == "float":
        raise _Invalid(f"log and step cannot be combined for a float (Optuna rejects both), "
                       f"but got log=true, step={step}", f["step"], key=key)
    if log and kind == "int" and step not in (None, 1):
        raise _Invalid(f"`step == 1` must hold for an int with log=True, but got step={step}",
                       f["step"], key=key)
    for bound, value in (("low", low), ("high", high)):
        if not spec.accepts(value):
            raise _Invalid(f"{bound} must be {spec.rule()}, but got {bound}={value}",
                           f[bound], key=key)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _number(node: YNode, key: str, name: str, kind: str) -> int | float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{name} must be a number, but got {show(value)}", node, key=key)
    if not math.isfinite(value):
        raise _Invalid(f"{name} must be finite, but got {name}={value}", node, key=key)
    if kind == "int" and isinstance(value, float):
        raise _Invalid(f"{name} must be an integer for an int distribution, but got "
                       f"{name}={value!r}", node, key=key)
    return value


def _flag(node: YNode | None, key: str, name: str) -> bool:
    if node is None:
        return False
    if not isinstance(node.value, bool):
        raise _Invalid(f"{name} must be true or false, but got {show(node.value)}", node,
                       key=key)
    return node.value


def _categorical(node: YNode, spec: ParamSpec, key: str) -> Categorical:
    items = node.value
    if not items:
        raise _Invalid("a categorical needs at least one choice, but got an empty list", node,
                       key=key)
    seen: set[tuple[type, Any]] = set()
    for item in items:
        _check_value(item, spec, "each choice", key)
        value = tuple(item.plain()) if item.is_seq else item.value
        marker = (type(value), value)
        if marker in seen:
            raise _Invalid(f"choices must be distinct, but got {show(item.value)} twice", item,
                           key=key)
        seen.add(marker)
    return Categorical(tuple(tuple(i.plain()) if i.is_seq else i.value for i in items))


def _check_value(node: YNode, spec: ParamSpec, what: str, key: str) -> None:
    value = node.value
    if spec.kind == "tuple" and node.is_seq and all(i.is_scalar for i in value) and (
            spec.accepts(node.plain())):
        return
    if node.is_scalar and spec.accepts(value) and not (
        isinstance(value, float) and (spec.kind == "int" or not math.isfinite(value))
    ):
        return
    message = f"{what} must be {spec.rule()}, but got {show(value)}"
    if spec.kind == "bool" and isinstance(value, str):
        message += "; write true or false"
    elif spec.kind == "choice" and isinstance(value, str):
        message += _did_you_mean(value, spec.choices)
    raise _Invalid(message, node, key=key)
