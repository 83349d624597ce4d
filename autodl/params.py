"""The typed form of a search space's leaves (a core module: the space, the families and
the training specs all use it): distributions, and the specs they are checked against.

A *distribution* says what a sampler may pick (``Float``, ``Int``, ``Categorical``, ``Fixed``).
A *ParamSpec* says what a parameter of a family, optimizer, schedule or the training loop
accepts at all (its kind, default, valid range or choices). Both are torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Categorical", "Distribution", "Fixed", "Float", "Int", "ParamSpec"]


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Fixed:
    value: Any


Distribution = Float | Int | Categorical | Fixed


@dataclass(frozen=True)
class ParamSpec:
    """What one named parameter accepts.

    ``kind`` is ``float``, ``int``, ``bool``, ``choice``, ``str`` (a non-empty string,
    e.g. a path) or ``tuple`` (a list of ``length`` numbers, any length when None, such as
    Adam's ``betas``; ``item`` says ``float`` or ``int``). ``low``/``high`` bound the
    values (inclusive unless ``low_open``/``high_open``); ``choices`` closes a ``choice``.
    ``required``: no default, the space must give it (a torch scheduler's ``step_size``).
    """

    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    help: str = ""
    length: int | None = None
    item: str = "float"
    required: bool = False

    def rule(self) -> str:
        """The rule in words, for error messages."""
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a non-empty string"
        if self.kind == "tuple":
            items = "integers" if self.item == "int" else "numbers"
            return f"a list of {self.length or 'any number of'} {items}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{'an integer' if self.kind == 'int' else 'a number'}" + (
            " " + " and ".join(parts) if parts else ""
        )

    def accepts(self, value: Any) -> bool:
        """Whether a single concrete value is valid for this parameter."""
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and bool(value.strip())
        if self.kind == "tuple":
            return isinstance(value, list | tuple) and (
                self.length is None or len(value) == self.length) and all(
                v is None or (not isinstance(v, bool) and isinstance(v, int | float) and (
                    self.item != "int" or isinstance(v, int))) for v in value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )


def specs(**params: ParamSpec) -> dict[str, ParamSpec]:
    """Keyword sugar for a name -> spec table."""
    return dict(params)


