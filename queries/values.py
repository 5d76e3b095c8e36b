"""Values as the query language sees them: JSON values plus *undefined*.

A property a document lacks is `UNDEFINED`, which is not JSON `null`: it never equals anything,
never satisfies a comparison, and a condition selects a document only when it is boolean `true`.
Comparisons are defined only between primitives of the same type (numbers with numbers, strings
with strings, booleans with booleans for equality, null with null); every other pairing, and any
object or array, is undefined.
"""

from __future__ import annotations

import enum
from typing import Any, Final

__all__ = ["UNDEFINED", "Undefined", "compare", "equals", "is_number", "is_primitive"]


class Undefined(enum.Enum):
    """The type of `UNDEFINED`, the value of a missing property or a meaningless expression."""

    UNDEFINED = "undefined"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined.UNDEFINED


def is_number(value: object) -> bool:
    """True for JSON numbers (Python int or float, never bool)."""
    return (type(value) is int) or (type(value) is float)


def is_primitive(value: object) -> bool:
    """True for strings, numbers, booleans and null."""
    return value is None or type(value) in (str, int, float, bool)


def _kind(value: object) -> str | None:
    t = type(value)
    if t is int or t is float:
        return "number"
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if value is None:
        return "null"
    return None


def equals(left: Any, right: Any) -> bool | Undefined:
    """`left = right` with the language's typing rules."""
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return UNDEFINED
    return bool(left == right)


def compare(op: str, left: Any, right: Any) -> bool | Undefined:
    """`left op right` for `<`, `>`, `<=`, `>=`: numbers with numbers, strings with strings."""
    kind = _kind(left)
    if kind not in ("number", "string") or kind != _kind(right):
        return UNDEFINED
    if op == "<":
        return bool(left < right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    return bool(left >= right)
