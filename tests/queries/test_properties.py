"""Property tests: printing round-trips, bad text raises only QueryError, and the compiled
evaluator agrees with the reference evaluator."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import queries
from queries import compiling, evaluating, nodes, parser

NAMES = st.sampled_from(["a", "b", "c", "deviceId", "x_1", "$v"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda p: nodes.Path(tuple(p)))
LITERALS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.text(alphabet=string.printable + "é✓'\"\\", max_size=8),
).map(nodes.Literal)


def _exprs() -> st.SearchStrategy[nodes.Expr]:
    leaves: st.SearchStrategy[nodes.Expr] = st.one_of(PATHS, LITERALS)

    def extend(children: st.SearchStrategy[nodes.Expr]) -> st.SearchStrategy[nodes.Expr]:
        ops = ["AND", "OR", "=", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%"]
        return st.one_of(
            st.builds(nodes.Binary, st.sampled_from(ops), children, children),
            st.builds(nodes.Unary, st.just("NOT"), children),
            st.builds(
                nodes.In,
                children,
                st.lists(LITERALS, max_size=3).map(lambda xs: nodes.Array(tuple(xs))),
                st.booleans(),
            ),
            st.builds(lambda e: nodes.Call("IS_DEFINED", (e,)), children),
            st.builds(lambda e: nodes.Call("LENGTH", (e,)), children),
        )

    return st.recursive(leaves, extend, max_leaves=12)


EXPRS = _exprs()
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["", "a", "b"])),
    lambda kids: st.dictionaries(NAMES, kids, max_size=3) | st.lists(kids, max_size=2),
    max_leaves=8,
)
DOCS = st.dictionaries(NAMES, JSON, max_size=4)


@settings(max_examples=300, deadline=None)
@given(EXPRS)
def test_printed_conditions_parse_back_to_the_same_tree(expr: nodes.Expr) -> None:
    assert parser.parse_condition(expr.to_sql()) == expr


@settings(max_examples=200, deadline=None)
@given(EXPRS, st.integers(min_value=0, max_value=50) | st.none())
def test_printed_queries_parse_back(expr: nodes.Expr, top: int | None) -> None:
    select = nodes.Select("devices", (), top, expr, None)
    assert parser.parse_select(select.to_sql()) == select


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=string.printable + "é[]'\"", max_size=60))
def test_random_text_raises_only_query_errors(text: str) -> None:
    for attempt in (text, "SELECT * FROM devices WHERE " + text):
        try:
            queries.parse(attempt)
        except queries.QueryError:
            pass


@settings(max_examples=500, deadline=None)
@given(EXPRS, DOCS)
def test_compiled_agrees_with_reference(expr: nodes.Expr, doc: dict[str, Any]) -> None:
    expected = evaluating.evaluate(expr, doc)
    actual = compiling.compile_expr(expr)(doc)
    assert type(actual) is type(expected)
    assert actual == expected or (actual != actual and expected != expected)


def test_deep_nesting_is_a_query_error() -> None:
    text = "SELECT * FROM devices WHERE " + "(" * 5000 + "a = 1" + ")" * 5000
    with pytest.raises(queries.QueryError, match="nests too deeply"):
        queries.parse(text)
