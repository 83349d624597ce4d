"""A safe YAML reader that keeps positions, for error messages that point at a line.

The text is only *composed* (parsed into a node tree); nothing is constructed by PyYAML.
The tree is then walked into :class:`YNode` objects holding plain values (``None``,
``bool``, ``int``, ``float``, ``str``, ``dict[str, YNode]``, ``list[YNode]``) together
with the 1-based line and column of each value and of its key, and its dotted key.

Scalars are resolved the YAML 1.2 way, not PyYAML's YAML 1.1 way:

- ``1e-5``, ``1E-5``, ``.5``, ``-2.5e3``, ``.inf`` are floats (YAML 1.1 reads ``1e-5`` as
  a string);
- only ``true``/``false`` (any case) are booleans; ``yes``, ``no``, ``on``, ``off`` stay
  strings;
- ``012`` is twelve (not octal), ``1:30`` and ``2024-01-01`` are strings.

Rejected with a :class:`~autodl.errors.UsageError` naming file, line, column and key:
syntax errors, duplicate keys (at the second occurrence), keys that are not plain
scalars, any tag other than the core ones (``!!python/object/apply:...`` never runs),
more than one document, and alias expansion past a fixed budget (billion laughs) or
recursive aliases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml import nodes

from autodl.errors import UsageError

__all__ = ["MAX_YAML_BYTES", "YNode", "load_yaml", "read_bounded", "show"]

MAX_YAML_BYTES = 1 << 20  # a search space is a few KB; a larger file is refused unread

MAX_ALIASES = 1000  # alias references in one file
MAX_NODES = 50_000  # values after alias expansion
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {"str", "int", "float", "bool", "null"}
_ALLOWED_TAGS = {_CORE + t for t in (*_SCALAR_TAGS, "seq", "map")}

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|false)$", re.IGNORECASE)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


_Resolvers = dict[str | None, list[tuple[str, re.Pattern[str]]]]  # first char -> (tag, regexp)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML-1.2-style implicit scalars and a cap on aliases."""

    yaml_implicit_resolvers: _Resolvers = {}  # noqa: RUF012 - replaced, not shared with SafeLoader

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                # types-PyYAML leaves Parser.peek_event unannotated (it returns an Event)
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases", mark
                )
        return super().compose_node(parent, index)


for _tag, _regexp, _first in (
    ("bool", _BOOL, "tTfF"),
    ("null", _NULL, ["~", "n", "N", ""]),
    ("int", _INT, "-+0123456789"),
    ("float", _FLOAT, "-+0123456789."),
):
    _Loader.add_implicit_resolver(_CORE + _tag, _regexp, list(_first))


@dataclass(eq=False)
class YNode:
    """One value of the document, where it is, and the dotted key that leads to it."""

    value: Any
    kind: str  # "map", "seq", "str", "int", "float", "bool", "null"
    path: str
    line: int
    column: int
    key_line: int
    key_column: int

    @property
    def is_map(self) -> bool:
        return self.kind == "map"

    @property
    def is_seq(self) -> bool:
        return self.kind == "seq"

    @property
    def is_scalar(self) -> bool:
        return self.kind not in ("map", "seq")

    def plain(self) -> Any:
        """The value without positions (nested dicts and lists)."""
        if self.is_map:
            return {k: v.plain() for k, v in self.value.items()}
        if self.is_seq:
            return [v.plain() for v in self.value]
        return self.value


def show(value: Any) -> str:
    """A value as a user wrote it in YAML, with its type when that is the problem."""
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def read_bounded(path: Path, source: str, max_bytes: int = MAX_YAML_BYTES) -> str:
    """The file's text, refused (exit 2) before it is read or parsed when it is larger than
    ``max_bytes``: parsing a 50 MB list took minutes and gigabytes before the node limit."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # a pipe or a growing file has no trustworthy size
    except OSError as exc:
        raise UsageError(f"cannot read the file: {exc.strerror or exc}", file=source) from None
    if len(data) > max_bytes:
        size = max(path.stat().st_size, len(data))
        raise UsageError(f"the file is {_mb(size)} MB, over the {_mb(max_bytes)} MB limit for a "
                         "search space; pass --max-yaml-mb to raise it", file=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                         file=source) from None


def _mb(size: int) -> str:
    return f"{size / 2**20:.3g}"


def load_yaml(text: str, source: str = "<string>") -> YNode | None:
    """Compose ``text`` and walk it into a :class:`YNode` tree; ``None`` for an empty file."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, source) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise UsageError(f"not valid YAML: character #x{exc.character:04x} is not allowed",
                         file=source, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"not valid YAML: {exc}", file=source) from None
    if root is None:
        return None
    return _Walk(source).node(root, "", root.start_mark, 0)


def _compose(text: str) -> nodes.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _syntax_error(exc: yaml.MarkedYAMLError, source: str) -> UsageError:
    mark = exc.problem_mark or exc.context_mark
    words = "; ".join(p for p in (exc.context, exc.problem) if p)
    return UsageError(
        f"not valid YAML: {words}",
        file=source,
        line=mark.line + 1 if mark else None,
        column=mark.column + 1 if mark else None,
    )


class _Walk:
    """Turns composed nodes into YNodes, enforcing tags, unique keys and budgets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0
        self.active: set[int] = set()  # ids of the collections being walked (cycle guard)

    def fail(self, message: str, mark: Any, path: str) -> UsageError:
        return UsageError(
            message, file=self.source, line=mark.line + 1, column=mark.column + 1,
            key=path or None,
        )

    def node(self, node: nodes.Node, path: str, key_mark: Any, depth: int) -> YNode:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise self.fail("the document is too large or too deeply nested "
                            "(aliases expand past the limit?)", node.start_mark, path)
        if node.tag not in _ALLOWED_TAGS:
            tag = node.tag.replace(_CORE, "!!")
            raise self.fail(f"tag {tag!r} is not allowed; only plain YAML values "
                            "(strings, numbers, true/false, null, lists, mappings)",
                            node.start_mark, path)
        if id(node) in self.active:
            raise self.fail("a recursive alias is not allowed", node.start_mark, path)
        kind = node.tag[len(_CORE):]
        if isinstance(node, nodes.ScalarNode):
            value = self.scalar(node, kind, path)
        else:
            self.active.add(id(node))
            value = self.collection(node, path, depth)
            self.active.discard(id(node))
        m = node.start_mark
        return YNode(value, kind, path, m.line + 1, m.column + 1,
                     key_mark.line + 1, key_mark.column + 1)

    def collection(self, node: nodes.Node, path: str, depth: int) -> Any:
        if isinstance(node, nodes.SequenceNode):
            return [self.node(item, f"{path}[{i}]", item.start_mark, depth + 1)
                    for i, item in enumerate(node.value)]
        out: dict[str, YNode] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, nodes.ScalarNode) or key_node.tag not in _ALLOWED_TAGS:
                raise self.fail("a key must be a plain name, not a list, mapping or tag",
                                key_node.start_mark, path)
            key = key_node.value
            child_path = f"{path}.{key}" if path else key
            if key in out:
                first = out[key].key_line
                raise self.fail(f"duplicate key {key!r} (first defined on line {first})",
                                key_node.start_mark, child_path)
            out[key] = self.node(value_node, child_path, key_node.start_mark, depth + 1)
        return out

    def scalar(self, node: nodes.ScalarNode, kind: str, path: str) -> Any:
        text = node.value
        try:
            return _SCALAR_PARSERS[kind](text)
        except ValueError:
            raise self.fail(f"!!{kind} {text!r} is not a valid {kind}",
                            node.start_mark, path) from None


def _parse_int(text: str) -> int:
    t = text.strip()
    if t[:2].lower() in ("0o", "0x"):
        return int(t, 0)
    return int(t, 10)


def _parse_float(text: str) -> float:
    t = text.strip().lower()
    if t.lstrip("+-") in (".inf", ".nan"):
        return float(t.replace(".", ""))
    return float(t)


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t not in ("true", "false"):
        raise ValueError(text)
    return t == "true"


def _parse_null(text: str) -> None:
    if not _NULL.match(text.strip()):
        raise ValueError(text)


_SCALAR_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "null": _parse_null,
}
