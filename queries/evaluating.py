"""The reference evaluator: walks the AST for one document, spelling out three-valued logic.

It is the specification the compiled form (`compiling.py`) must agree with; property tests check
that they do. Each node type has one function in `_EVALUATORS`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

from queries import functions, nodes
from queries.values import UNDEFINED, compare, equals, is_number

__all__ = ["arithmetic", "evaluate", "logical_and", "logical_not", "logical_or", "lookup"]

_LARGEST = int(sys.float_info.max)  # integers past a double's range are not JSON numbers


def lookup(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at a property path, or UNDEFINED where the path leaves the document."""
    value = doc
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return UNDEFINED
        value = value[part]
    return value


def logical_and(left: Any, right: Any) -> Any:
    """Three-valued AND: false wins, then undefined (anything not boolean is undefined)."""
    if left is False or right is False:
        return False
    if left is True and right is True:
        return True
    return UNDEFINED


def logical_or(left: Any, right: Any) -> Any:
    """Three-valued OR: true wins, then undefined."""
    if left is True or right is True:
        return True
    if left is False and right is False:
        return False
    return UNDEFINED


def logical_not(value: Any) -> Any:
    """NOT of a boolean; undefined for anything else."""
    if value is True:
        return False
    if value is False:
        return True
    return UNDEFINED


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """`+ - * / %` on numbers; undefined for other operands, division by zero and overflow.

    `%` keeps the sign of the dividend (`-7 % 3` is -1), as IoT Hub's .NET arithmetic does.
    """
    if not (is_number(left) and is_number(right)):
        return UNDEFINED
    try:
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif right == 0:
            return UNDEFINED
        elif op == "/":
            result = left / right
        else:
            remainder = abs(left) % abs(right)
            result = -remainder if left < 0 else remainder
    except OverflowError:
        return UNDEFINED
    if type(result) is float:
        return result if math.isfinite(result) else UNDEFINED
    return result if -_LARGEST < result < _LARGEST else UNDEFINED


def _binary(node: nodes.Binary, doc: Any) -> Any:
    first, steps = nodes.chain(node)
    value = evaluate(first, doc)
    for op, operand in steps:
        value = _apply(op, value, evaluate(operand, doc))
    return value


def _apply(op: str, left: Any, right: Any) -> Any:
    if op == "AND":
        return logical_and(left, right)
    if op == "OR":
        return logical_or(left, right)
    if op == "=":
        return equals(left, right)
    if op == "!=":
        return logical_not(equals(left, right))
    if op in ("<", ">", "<=", ">="):
        return compare(op, left, right)
    return arithmetic(op, left, right)


def _unary(node: nodes.Unary, doc: Any) -> Any:
    value = evaluate(node.operand, doc)
    if node.op == "NOT":
        return logical_not(value)
    return -value if is_number(value) else UNDEFINED


def _in(node: nodes.In, doc: Any) -> Any:
    value = evaluate(node.operand, doc)
    if value is UNDEFINED:
        return UNDEFINED
    found = any(equals(value, evaluate(item, doc)) is True for item in node.items.items)
    return found != node.negated


def _call(node: nodes.Call, doc: Any) -> Any:
    args = [evaluate(arg, doc) for arg in node.args]
    return functions.FUNCTIONS[node.name].impl(*args)


def _array(node: nodes.Array, doc: Any) -> Any:
    values = [evaluate(item, doc) for item in node.items]
    return UNDEFINED if any(v is UNDEFINED for v in values) else values


_EVALUATORS: dict[type, Callable[[Any, Any], Any]] = {
    nodes.Literal: lambda node, doc: node.value,
    nodes.Path: lambda node, doc: lookup(doc, node.parts),
    nodes.Array: _array,
    nodes.Binary: _binary,
    nodes.Unary: _unary,
    nodes.In: _in,
    nodes.Call: _call,
}


def evaluate(node: nodes.Expr, doc: Any) -> Any:
    """The value of an expression for one document (UNDEFINED where it has none)."""
    return _EVALUATORS[type(node)](node, doc)
