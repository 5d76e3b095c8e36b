"""Scalar functions: those IoT Hub documents for routing conditions.

Twin and job queries on IoT Hub accept only `IS_DEFINED`; strict parsing rejects the others there,
so a query validated locally also runs on Azure. Each function returns `UNDEFINED` when its
arguments are of the wrong type, as the language's other operators do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queries.values import UNDEFINED, is_number, is_primitive

__all__ = ["FUNCTIONS", "Function"]


@dataclass(frozen=True, slots=True)
class Function:
    """A scalar function: how many arguments it takes and what it computes."""

    min_args: int
    max_args: int
    impl: Callable[..., Any]


def _numeric(fn: Callable[[float], Any]) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        if not is_number(x):
            return UNDEFINED
        try:
            result = fn(x)
        except (ValueError, OverflowError):
            return UNDEFINED
        if type(result) is float and not math.isfinite(result):
            return UNDEFINED
        return result

    return apply


def _strings(fn: Callable[..., Any]) -> Callable[..., Any]:
    def apply(*args: Any) -> Any:
        if not all(type(a) is str for a in args):
            return UNDEFINED
        return fn(*args)

    return apply


def _power(base: Any, exponent: Any) -> Any:
    if not (is_number(base) and is_number(exponent)):
        return UNDEFINED
    try:
        result = math.pow(base, exponent)
    except (ValueError, OverflowError, ZeroDivisionError):
        return UNDEFINED
    return int(result) if result.is_integer() and abs(result) < 2**53 else result


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _as_number(x: Any) -> Any:
    if is_number(x):
        return x
    if type(x) is str:
        try:
            return int(x)
        except ValueError:
            pass
        try:
            value = float(x)
        except ValueError:
            return UNDEFINED
        return value if math.isfinite(value) else UNDEFINED
    return UNDEFINED


def _substring(s: Any, start: Any, length: Any = UNDEFINED) -> Any:
    if type(s) is not str or type(start) is not int:
        return UNDEFINED
    if length is UNDEFINED:
        return s[max(start, 0) :]
    if type(length) is not int:
        return UNDEFINED
    begin = max(start, 0)
    return s[begin : begin + max(length, 0)]


FUNCTIONS: dict[str, Function] = {
    "IS_DEFINED": Function(1, 1, lambda x: x is not UNDEFINED),
    "IS_ARRAY": Function(1, 1, lambda x: type(x) is list),
    "IS_BOOL": Function(1, 1, lambda x: type(x) is bool),
    "IS_NULL": Function(1, 1, lambda x: x is None),
    "IS_NUMBER": Function(1, 1, is_number),
    "IS_OBJECT": Function(1, 1, lambda x: type(x) is dict),
    "IS_PRIMITIVE": Function(1, 1, lambda x: x is not UNDEFINED and is_primitive(x)),
    "IS_STRING": Function(1, 1, lambda x: type(x) is str),
    "AS_NUMBER": Function(1, 1, _as_number),
    "ABS": Function(1, 1, _numeric(abs)),
    "CEILING": Function(1, 1, _numeric(math.ceil)),
    "FLOOR": Function(1, 1, _numeric(math.floor)),
    "EXP": Function(1, 1, _numeric(math.exp)),
    "SQUARE": Function(1, 1, _numeric(lambda x: x * x)),
    "SQRT": Function(1, 1, _numeric(math.sqrt)),
    "SIGN": Function(1, 1, _numeric(_sign)),
    "POWER": Function(2, 2, _power),
    "CONCAT": Function(2, 64, _strings(lambda *parts: "".join(parts))),
    "LENGTH": Function(1, 1, _strings(len)),
    "LOWER": Function(1, 1, _strings(str.lower)),
    "UPPER": Function(1, 1, _strings(str.upper)),
    "SUBSTRING": Function(2, 3, _substring),
    "INDEX_OF": Function(2, 2, _strings(str.find)),
    "STARTS_WITH": Function(2, 2, _strings(str.startswith)),
    "ENDS_WITH": Function(2, 2, _strings(str.endswith)),
    "CONTAINS": Function(2, 2, _strings(lambda s, part: part in s)),
}
