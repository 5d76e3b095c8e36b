"""The query AST: frozen nodes that can print themselves back as query text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from queries.values import UNDEFINED, Undefined

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "Array",
    "Binary",
    "Call",
    "Expr",
    "In",
    "Literal",
    "Path",
    "Projection",
    "Select",
    "Unary",
    "chain",
    "literal_sql",
    "result_keys",
]

AGGREGATES = ("COUNT", "AVG", "SUM", "MIN", "MAX")
ARITHMETIC = frozenset({"+", "-", "*", "/", "%"})


def literal_sql(value: object) -> str:
    """Query text for a constant."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            raise ValueError(f"{value} has no query literal")
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + json.dumps(value)[1:-1].replace("'", "\\'") + "'"
    raise TypeError(f"no literal for {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: string, number, true, false, null or undefined."""

    value: str | int | float | bool | Undefined | None

    def to_sql(self) -> str:
        return literal_sql(self.value)


@dataclass(frozen=True, slots=True)
class Array:
    """An array constant such as `['a', 1]`."""

    items: tuple[Expr, ...]

    def to_sql(self) -> str:
        return "[" + ", ".join(item.to_sql() for item in self.items) + "]"


@dataclass(frozen=True, slots=True)
class Path:
    """A property path such as `properties.reported.firmware.currentFwVersion`."""

    parts: tuple[str, ...]

    def to_sql(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Unary:
    """`NOT x` or `-x`."""

    op: str
    operand: Expr

    def to_sql(self) -> str:
        space = " " if self.op == "NOT" else ""
        return f"({self.op}{space}{self.operand.to_sql()})"


@dataclass(frozen=True, slots=True)
class Binary:
    """An arithmetic, comparison or logical operator with two operands."""

    op: str
    left: Expr
    right: Expr

    def to_sql(self) -> str:
        first, rest = chain(self)
        text = first.to_sql()
        for op, operand in rest:
            text = f"({text} {op} {operand.to_sql()})"
        return text


@dataclass(frozen=True, slots=True)
class In:
    """`x IN [...]`, or `x NIN [...]` when `negated`."""

    operand: Expr
    items: Array
    negated: bool

    def to_sql(self) -> str:
        op = "NIN" if self.negated else "IN"
        return f"({self.operand.to_sql()} {op} {self.items.to_sql()})"


@dataclass(frozen=True, slots=True)
class Call:
    """A scalar function call such as `IS_DEFINED(tags.x)`; `name` is upper-case."""

    name: str
    args: tuple[Expr, ...]

    def to_sql(self) -> str:
        return f"{self.name}(" + ", ".join(a.to_sql() for a in self.args) + ")"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate in a SELECT list: `COUNT()`, `AVG(path)`, ...; `name` is upper-case."""

    name: str
    arg: Path | None

    def to_sql(self) -> str:
        return f"{self.name}({self.arg.to_sql() if self.arg else ''})"


Expr = Literal | Array | Path | Unary | Binary | In | Call


@dataclass(frozen=True, slots=True)
class Projection:
    """One item of a SELECT list and the key it has in result rows."""

    expr: Expr | Aggregate
    alias: str | None

    def to_sql(self) -> str:
        return self.expr.to_sql() + (f" AS {self.alias}" if self.alias else "")


@dataclass(frozen=True, slots=True)
class Select:
    """A whole query. `projections` is empty for `SELECT *`."""

    source: str
    projections: tuple[Projection, ...]
    top: int | None
    where: Expr | None
    group_by: Path | None

    def to_sql(self) -> str:
        parts = ["SELECT"]
        if self.top is not None:
            parts.append(f"TOP {self.top}")
        parts.append(", ".join(p.to_sql() for p in self.projections) or "*")
        parts.append(f"FROM {self.source}")
        if self.where is not None:
            parts.append(f"WHERE {self.where.to_sql()}")
        if self.group_by is not None:
            parts.append(f"GROUP BY {self.group_by.to_sql()}")
        return " ".join(parts)


def _family(op: str) -> str:
    return "arithmetic" if op in ARITHMETIC else op


def chain(node: Binary) -> tuple[Expr, list[tuple[str, Expr]]]:
    """A left-deep run of same-family operators as its first operand and (op, operand) steps.

    `a AND b AND c` parses to `((a AND b) AND c)`; long runs (hundreds of `OR`s over device ids)
    are common, so the evaluators fold them in a loop instead of recursing once per operator.
    `+ - * / %` are one family: `(a + b) * c` folds left to right as it evaluates.
    """
    family = _family(node.op)
    steps: list[tuple[str, Expr]] = []
    current: Expr = node
    while isinstance(current, Binary) and _family(current.op) == family:
        steps.append((current.op, current.right))
        current = current.left
    steps.reverse()
    return current, steps


def result_keys(projections: tuple[Projection, ...]) -> list[str]:
    """The key each SELECT item has in result rows.

    An alias names its item; a path without one is named by its last property (`tags.location.
    region` gives `region`); anything else gets `$1`, `$2`, ... numbered among the unnamed items
    only, as IoT Hub (and Cosmos DB, whose language it shares) name them.
    """
    keys: list[str] = []
    unnamed = 0
    for projection in projections:
        if projection.alias:
            keys.append(projection.alias)
        elif isinstance(projection.expr, Path):
            keys.append(projection.expr.parts[-1])
        else:
            unnamed += 1
            keys.append(f"${unnamed}")
    return keys
