"""The compiled form: an AST turned into nested Python closures, once per query.

Evaluating a closure tree avoids the dispatch on node types the reference evaluator pays per node
and per document. Paths become tuples looked up with `dict.get`, constants are folded, and the
comparison of a path with a constant (the most common predicate) has a closure of its own.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from queries import evaluating, functions, nodes
from queries.values import UNDEFINED, compare, equals, is_number

__all__ = ["Compiled", "compile_expr", "compile_predicate"]

Compiled = Callable[[Any], Any]

_MISSING = object()


def _path(parts: tuple[str, ...]) -> Compiled:
    """A getter for a property path, unrolled for the usual depths.

    The fast route assumes plain dicts (what JSON decoding gives); anything else (a missing
    property, another Mapping, a scalar on the way) goes to the reference `lookup`.
    """
    lookup = evaluating.lookup
    missing = _MISSING
    if len(parts) == 1:
        (a,) = parts

        def get1(doc: Any) -> Any:
            value = doc.get(a, missing)
            return UNDEFINED if value is missing else value

        return get1
    if len(parts) == 2:
        a, b = parts

        def get2(doc: Any) -> Any:
            value = doc.get(a, missing)
            if type(value) is dict:
                value = value.get(b, missing)
                if value is not missing:
                    return value
            return lookup(doc, parts)

        return get2
    if len(parts) == 3:
        a, b, c = parts

        def get3(doc: Any) -> Any:
            value = doc.get(a, missing)
            if type(value) is dict:
                value = value.get(b, missing)
                if type(value) is dict:
                    value = value.get(c, missing)
                    if value is not missing:
                        return value
            return lookup(doc, parts)

        return get3
    if len(parts) == 4:
        a, b, c, d = parts

        def get4(doc: Any) -> Any:
            value = doc.get(a, missing)
            if type(value) is dict:
                value = value.get(b, missing)
                if type(value) is dict:
                    value = value.get(c, missing)
                    if type(value) is dict:
                        value = value.get(d, missing)
                        if value is not missing:
                            return value
            return lookup(doc, parts)

        return get4
    return lambda doc: lookup(doc, parts)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _compare_path_to_constant(op: str, parts: tuple[str, ...], constant: Any) -> Compiled | None:
    """A fast closure for `path op constant` where the constant is a string or a number."""
    test = _ORDER.get(op)
    if test is None or not (type(constant) is str or is_number(constant)):
        return None
    get = _path(parts)
    if type(constant) is str:

        def against_text(doc: Any) -> Any:
            value = get(doc)
            return test(value, constant) if type(value) is str else UNDEFINED

        return against_text

    def against_number(doc: Any) -> Any:
        value = get(doc)
        kind = type(value)
        return test(value, constant) if kind is int or kind is float else UNDEFINED

    return against_number


def _all(parts: tuple[Compiled, ...]) -> Compiled:
    """A run of ANDs: false if any part is false, true if all are true, else undefined."""

    def and_(doc: Any) -> Any:
        result: Any = True
        for part in parts:
            value = part(doc)
            if value is False:
                return False
            if value is not True:
                result = UNDEFINED
        return result

    return and_


def _any(parts: tuple[Compiled, ...]) -> Compiled:
    """A run of ORs: true if any part is true, false if all are false, else undefined."""

    def or_(doc: Any) -> Any:
        result: Any = False
        for part in parts:
            value = part(doc)
            if value is True:
                return True
            if value is not False:
                result = UNDEFINED
        return result

    return or_


def _arithmetic(first: Compiled, steps: tuple[tuple[str, Compiled], ...]) -> Compiled:
    """A run of `+ - * / %`, folded left to right."""
    arithmetic = evaluating.arithmetic

    def fold(doc: Any) -> Any:
        value = first(doc)
        for op, operand in steps:
            value = arithmetic(op, value, operand(doc))
        return value

    return fold


def _binary(node: nodes.Binary) -> Compiled:
    op = node.op
    if isinstance(node.left, nodes.Path) and isinstance(node.right, nodes.Literal):
        fast = _compare_path_to_constant(op, node.left.parts, node.right.value)
        if fast is not None:
            return fast
    first, steps = nodes.chain(node)
    if op == "AND":
        return _all((compile_expr(first), *(compile_expr(e) for _, e in steps)))
    if op == "OR":
        return _any((compile_expr(first), *(compile_expr(e) for _, e in steps)))
    if op in nodes.ARITHMETIC:
        return _arithmetic(compile_expr(first), tuple((o, compile_expr(e)) for o, e in steps))
    left = compile_expr(node.left)
    right = compile_expr(node.right)
    if op == "=":
        return lambda doc: equals(left(doc), right(doc))
    if op == "!=":
        return lambda doc: evaluating.logical_not(equals(left(doc), right(doc)))
    return lambda doc: compare(op, left(doc), right(doc))


def _unary(node: nodes.Unary) -> Compiled:
    operand = compile_expr(node.operand)
    if node.op == "NOT":
        return lambda doc: evaluating.logical_not(operand(doc))
    return lambda doc: -v if is_number(v := operand(doc)) else UNDEFINED


def _in(node: nodes.In) -> Compiled:
    operand = compile_expr(node.operand)
    negated = node.negated
    if all(isinstance(item, nodes.Literal) for item in node.items.items):
        constants = [item.value for item in node.items.items]  # type: ignore[union-attr]

        def in_constants(doc: Any) -> Any:
            value = operand(doc)
            if value is UNDEFINED:
                return UNDEFINED
            found = any(equals(value, c) is True for c in constants)
            return found != negated

        return in_constants
    items = [compile_expr(item) for item in node.items.items]

    def in_(doc: Any) -> Any:
        value = operand(doc)
        if value is UNDEFINED:
            return UNDEFINED
        return any(equals(value, item(doc)) is True for item in items) != negated

    return in_


def _call(node: nodes.Call) -> Compiled:
    impl = functions.FUNCTIONS[node.name].impl
    args = [compile_expr(arg) for arg in node.args]
    if len(args) == 1:
        (only,) = args
        return lambda doc: impl(only(doc))
    return lambda doc: impl(*(arg(doc) for arg in args))


def _array(node: nodes.Array) -> Compiled:
    items = [compile_expr(item) for item in node.items]

    def array(doc: Any) -> Any:
        values = [item(doc) for item in items]
        return UNDEFINED if any(v is UNDEFINED for v in values) else values

    return array


def _literal(node: nodes.Literal) -> Compiled:
    value = node.value
    return lambda doc: value


_COMPILERS: dict[type, Callable[[Any], Compiled]] = {
    nodes.Literal: _literal,
    nodes.Path: lambda node: _path(node.parts),
    nodes.Array: _array,
    nodes.Binary: _binary,
    nodes.Unary: _unary,
    nodes.In: _in,
    nodes.Call: _call,
}


def compile_expr(node: nodes.Expr) -> Compiled:
    """A closure computing `node`'s value for a document (a dict)."""
    return _COMPILERS[type(node)](node)


def compile_predicate(node: nodes.Expr | None) -> Callable[[Any], bool]:
    """A closure that is true exactly when `node` evaluates to boolean true.

    A top-level run of ANDs is true only when every part is true, so it skips the three-valued
    bookkeeping and stops at the first part that is not true.
    """
    if node is None:
        return lambda doc: True
    if isinstance(node, nodes.Binary) and node.op == "AND":
        first, steps = nodes.chain(node)
        parts = tuple(compile_expr(e) for e in (first, *(e for _, e in steps)))

        def every(doc: Any) -> bool:
            for part in parts:  # noqa: SIM110 - all() would build a generator per document
                if part(doc) is not True:
                    return False
            return True

        return every
    expr = compile_expr(node)
    return lambda doc: expr(doc) is True
