"""Checks for queries that parse but almost surely do not mean what they say.

IoT Hub answers a query over a property no twin has with no rows and no error: `tags.regoin =
'eu'` and `tags.region = eu-west` (unquoted, so it reads as `eu - west`, arithmetic on two
undefined properties) both run and match nothing. `check` finds these before the query runs:

- a path whose root is not a twin field (`tag.region`, `eu`), with a "did you mean";
- `properties.<x>` where `x` is neither `desired` nor `reported`;
- a comparison whose one side is built only from such paths: the unquoted-string case, with the
  quoted string to write instead;
- with a `Scheme` (the fleet's declared tags and reported properties), a path the scheme does not
  have, with the closest one it does.

Each finding is a `QueryWarning` that points at the path as a `QueryError` would, so callers can
show it with its caret, refuse it, or log it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from queries import errors, nodes, parser
from queries.tokens import Token

__all__ = ["QueryWarning", "Scheme", "check", "check_condition"]

_ROOTS = frozenset(parser.TWIN_FIELDS.values()) | {"tags", "properties"}
_SECTIONS = ("desired", "reported")
_COMPARISONS = frozenset({"=", "!=", "<>", "<", ">", "<=", ">="})


@dataclass(frozen=True)
class Scheme:
    """The paths a fleet declares, as nested mappings of property names.

    `tags` and `reported` map a property name to the mapping of its own properties, or to `None`
    where the scheme does not constrain what lies below (a free-form object or a leaf value).

    Attributes:
        tags: the declared tags.
        reported: the declared reported properties (capabilities and the twin contract).
    """

    tags: Mapping[str, Any] = field(default_factory=dict)
    reported: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QueryWarning:
    """A finding about query text that parses.

    Attributes:
        reason: what looks wrong and what to write instead.
        text: the whole query text.
        line: 1-based line of the path at fault.
        column: 1-based column of the path at fault.
        outside_scheme: the path is outside the `Scheme` the check was given (a fleet that
            declared its scheme may refuse the query rather than warn).
    """

    reason: str
    text: str
    line: int
    column: int
    outside_scheme: bool = False

    def __str__(self) -> str:
        return f"{self.reason} at line {self.line}, column {self.column}:\n" + errors.pointer(
            self.text, self.line, self.column
        )


def check(text: str, *, scheme: Scheme | None = None) -> list[QueryWarning]:
    """Find the likely mistakes in a whole query (see the module docstring).

    Raises:
        QueryError: the text does not parse at all.
    """
    checker = parser.Parser(parser.checked(text))
    select = parser.guarded(text, checker.parse_query)
    if select.source != "devices":
        return []
    roots = list(_walk_exprs(select))
    return _findings(text, checker, roots, scheme)


def check_condition(text: str, *, scheme: Scheme | None = None) -> list[QueryWarning]:
    """Find the likely mistakes in a bare condition (a job's or campaign's target).

    Raises:
        QueryError: the text does not parse at all.
    """
    checker = parser.Parser(parser.checked(text))
    expr = parser.guarded(text, checker.parse_condition)
    return _findings(text, checker, [expr], scheme)


def _walk_exprs(select: nodes.Select) -> Iterator[nodes.Expr]:
    for projection in select.projections:
        if isinstance(projection.expr, nodes.Aggregate):
            if projection.expr.arg is not None:
                yield projection.expr.arg
        else:
            yield projection.expr
    if select.where is not None:
        yield select.where
    if select.group_by is not None:
        yield select.group_by


def _findings(
    text: str, checker: parser.Parser, exprs: list[nodes.Expr], scheme: Scheme | None
) -> list[QueryWarning]:
    where = {id(path): (first, last) for path, first, last in checker.paths}
    found: list[QueryWarning] = []
    reported: set[int] = set()  # paths already named by an unquoted-string finding

    def warn(reason: str, token: Token, *, outside_scheme: bool = False) -> None:
        found.append(QueryWarning(reason, text, token.line, token.column, outside_scheme))

    for comparison in _comparisons(exprs):
        for side in (comparison.left, comparison.right):
            paths = _bare_words(side)
            if paths and all(not _known_root(p) for p in paths):
                first = where[id(paths[0])][0]
                last = where[id(paths[-1])][1]
                written = "".join(text[first.start : last.end].split())
                names = " and ".join(repr(p.parts[0]) for p in paths)
                reads = (
                    "arithmetic on the undefined properties"
                    if len(paths) > 1
                    else ("the undefined property")
                )
                warn(
                    f"{written} is not quoted, so it reads as {reads} {names} and the "
                    f"comparison is never true; write the string as '{written}'",
                    first,
                )
                reported.update(id(p) for p in paths)
    for path, first, _ in checker.paths:
        if id(path) in reported:
            continue
        reason = _unknown(path, None)
        if reason:
            warn(reason, first)
        elif scheme is not None and (reason := _unknown(path, scheme)):
            warn(reason, first, outside_scheme=True)
    found.sort(key=lambda w: (w.line, w.column))
    return found


def _comparisons(exprs: list[nodes.Expr]) -> Iterator[nodes.Binary]:
    stack: list[nodes.Expr] = list(exprs)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Binary):
            if node.op in _COMPARISONS:
                yield node
            stack.extend((node.left, node.right))
        elif isinstance(node, nodes.Unary | nodes.In):
            stack.append(node.operand)
        elif isinstance(node, nodes.Call):
            stack.extend(node.args)


def _bare_words(expr: nodes.Expr) -> list[nodes.Path]:
    """The paths of `expr` when it is nothing but paths joined by arithmetic, else []."""
    if isinstance(expr, nodes.Path):
        return [expr] if len(expr.parts) == 1 else []
    if isinstance(expr, nodes.Binary) and expr.op in nodes.ARITHMETIC:
        left, right = _bare_words(expr.left), _bare_words(expr.right)
        return left + right if left and right else []
    return []


def _known_root(path: nodes.Path) -> bool:
    return path.parts[0] in _ROOTS


def _unknown(path: nodes.Path, scheme: Scheme | None) -> str | None:
    parts = path.parts
    name = ".".join(parts)
    if parts[0] not in _ROOTS:
        hint = _suggest(parts[0], _ROOTS) or (
            "; a twin's properties are under tags, properties.desired and properties.reported"
        )
        return f"{name!r} is not a twin property{hint}"
    if parts[0] == "properties" and len(parts) > 1 and parts[1] not in _SECTIONS:
        return (
            f"{name!r} is not a twin property: below 'properties' come 'desired' and 'reported'"
            + (_suggest(parts[1], _SECTIONS, prefix="properties."))
        )
    if scheme is None:
        return None
    if parts[0] == "tags":
        return _outside(parts, 1, scheme.tags, "the fleet's tag scheme")
    if parts[:2] == ("properties", "reported") and scheme.reported is not None:
        return _outside(parts, 2, scheme.reported, "the fleet's reported scheme")
    return None


def _outside(parts: tuple[str, ...], start: int, tree: Mapping[str, Any], what: str) -> str | None:
    level: Mapping[str, Any] | None = tree
    for depth in range(start, len(parts)):
        if level is None:
            return None
        if parts[depth] not in level:
            prefix = ".".join(parts[:depth]) + "."
            return f"{'.'.join(parts)!r} is not in {what}" + _suggest(
                parts[depth], level, prefix=prefix
            )
        level = level[parts[depth]]
    return None


def _suggest(name: str, choices: Any, *, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""
