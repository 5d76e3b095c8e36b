"""The query AST: frozen nodes that can print themselves back as query text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

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
    "literal_sql",
]

AGGREGATES = ("COUNT", "AVG", "SUM", "MIN", "MAX")


def literal_sql(value: object) -> str:
    """Query text for a constant."""
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
    """A constant: string, number, true, false or null."""

    value: str | int | float | bool | None

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
        return f"({self.left.to_sql()} {self.op} {self.right.to_sql()})"


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
