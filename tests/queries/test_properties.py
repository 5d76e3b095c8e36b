"""Property tests: printed ASTs parse back to themselves, any text raises only QueryError, tokens
know where they stand, and the compiled evaluator agrees with the reference evaluator."""

from __future__ import annotations

import collections
import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import queries
from queries import compiling, evaluating, functions, nodes, parser, tokens
from queries.values import UNDEFINED

NAMES = st.sampled_from(["a", "b", "c", "deviceId", "x_1", "$v", "tags", "reported"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda p: nodes.Path(tuple(p)))
NUMBERS = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
)
LITERALS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.just(UNDEFINED),
    st.text(alphabet=string.printable + "é✓'\"\\\u2028", max_size=8),
).map(nodes.Literal)
OPERATORS = ["AND", "OR", "=", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%"]
CALLS = sorted(functions.FUNCTIONS.items())


def _call(children: st.SearchStrategy[nodes.Expr]) -> st.SearchStrategy[nodes.Expr]:
    def build(item: tuple[str, functions.Function], data: st.DataObject) -> nodes.Expr:
        name, spec = item
        count = data.draw(st.integers(spec.min_args, min(spec.max_args, 3)))
        return nodes.Call(name, tuple(data.draw(children) for _ in range(count)))

    return st.builds(build, st.sampled_from(CALLS), st.data())


def _exprs() -> st.SearchStrategy[nodes.Expr]:
    leaves: st.SearchStrategy[nodes.Expr] = st.one_of(PATHS, LITERALS)

    def extend(children: st.SearchStrategy[nodes.Expr]) -> st.SearchStrategy[nodes.Expr]:
        arrays = st.lists(children, max_size=3).map(lambda xs: nodes.Array(tuple(xs)))
        negatable = children.filter(
            lambda e: not (isinstance(e, nodes.Literal) and type(e.value) in (int, float))
        )
        return st.one_of(
            st.builds(nodes.Binary, st.sampled_from(OPERATORS), children, children),
            st.builds(nodes.Unary, st.just("NOT"), children),
            st.builds(nodes.Unary, st.just("-"), negatable),
            st.builds(nodes.In, children, arrays, st.booleans()),
            arrays,
            _call(children),
        )

    return st.recursive(leaves, extend, max_leaves=14)


EXPRS = _exprs()
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["", "a", "b", "A", "dev-1", "1.5"]),
)
JSON = st.recursive(
    SCALARS,
    lambda kids: st.dictionaries(NAMES, kids, max_size=3) | st.lists(kids, max_size=2),
    max_leaves=10,
)
DOCS = st.dictionaries(NAMES, JSON, max_size=5)


@settings(max_examples=300, deadline=None)
@given(EXPRS)
def test_printed_conditions_parse_back_to_the_same_tree(expr: nodes.Expr) -> None:
    assert parser.parse_condition(expr.to_sql()) == expr


def _items(data: st.DataObject) -> tuple[tuple[nodes.Projection, ...], nodes.Path | None]:
    """A valid SELECT list: plain projections, or aggregates with their GROUP BY path."""
    aliases = st.none() | st.sampled_from(["n", "total", "region", "x"])
    if data.draw(st.booleans()):
        exprs = data.draw(st.lists(PATHS | EXPRS, min_size=1, max_size=3))
        items = tuple(nodes.Projection(e, data.draw(aliases)) for e in exprs)
        group_by = None
    else:
        group_by = data.draw(st.none() | PATHS)
        aggregates = [
            nodes.Aggregate(name, None if name == "COUNT" else data.draw(PATHS))
            for name in data.draw(st.lists(st.sampled_from(nodes.AGGREGATES), min_size=1))
        ]
        items = tuple(nodes.Projection(a, data.draw(aliases)) for a in aggregates)
        if group_by is not None and data.draw(st.booleans()):
            items = (nodes.Projection(group_by, data.draw(aliases)), *items)
    return items, group_by


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(min_value=0, max_value=10**6) | st.none(), EXPRS | st.none())
def test_printed_queries_parse_back(data: st.DataObject, top: int | None, where: Any) -> None:
    items, group_by = _items(data)
    keys = nodes.result_keys(items)
    select = nodes.Select("devices", items, top, where, group_by)
    if len(set(keys)) < len(keys):
        with pytest.raises(queries.UnsupportedQuery, match="both named"):
            parser.parse_select(select.to_sql())
    else:
        assert parser.parse_select(select.to_sql()) == select


@settings(max_examples=100, deadline=None)
@given(EXPRS)
def test_printed_job_queries_parse_back(expr: nodes.Expr) -> None:
    text = "SELECT * FROM devices.jobs WHERE " + _prefixed(expr).to_sql()
    assert parser.parse_select(text) == nodes.Select("devices.jobs", (), None, expr, None)


def _prefixed(expr: Any) -> Any:
    """The same tree with every path written `devices.jobs.<path>`."""
    if isinstance(expr, nodes.Path):
        return nodes.Path(("devices", "jobs", *expr.parts))
    if isinstance(expr, nodes.Binary):
        return nodes.Binary(expr.op, _prefixed(expr.left), _prefixed(expr.right))
    if isinstance(expr, nodes.Unary):
        return nodes.Unary(expr.op, _prefixed(expr.operand))
    if isinstance(expr, nodes.In):
        return nodes.In(_prefixed(expr.operand), _prefixed(expr.items), expr.negated)
    if isinstance(expr, nodes.Array):
        return nodes.Array(tuple(_prefixed(i) for i in expr.items))
    if isinstance(expr, nodes.Call):
        return nodes.Call(expr.name, tuple(_prefixed(a) for a in expr.args))
    return expr


PIECES = [
    "SELECT", "select", "TOP", "*", "FROM", "devices", "devices.jobs", "WHERE", "GROUP", "BY", "AS",
    "AND", "OR", "NOT", "IN", "NIN", "true", "null", "undefined", "COUNT()", "AVG(", "IS_DEFINED(",
    "LOWER(", "SUBSTRING(", "(", ")", "[", "]", ",", ".", "=", "<>", "!=", "<=", "+", "-", "%", "/",
    "tags.a", "properties.reported.x", "deviceId", "'s'", '"d\\"q"', "'\\u00e9'", "'\\x'", "'open",
    "1", "-2.5", "0x1F", "1e999", "9" * 400, "$v", "\n", "#", "`", "\\",
]  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=25).map(" ".join)
    | st.text(alphabet=string.printable + "é[]'\"$\u2028", max_size=60)
    # digits and spaces outside ASCII ("²" is a digit to str.isdigit, not to int or \\d)
    | st.text(alphabet=string.digits + " .=<>'\"²³٣߀\x85\xa0\u2003\x1c\ud800", max_size=30)
    | st.text(max_size=20)
)
def test_any_text_raises_only_query_errors(text: str) -> None:
    for attempt in (text, "SELECT * FROM devices WHERE " + text, "SELECT " + text):
        try:
            query = queries.parse(attempt, strict=len(text) % 2 == 0)
        except queries.QueryError as error:
            _check_error(error, attempt)
        else:
            json.dumps(query.run([{"deviceId": "d", "tags": {"a": 1}}]), allow_nan=False)
    try:
        queries.parse_condition(text).matches({"tags": {"a": "s"}})
    except queries.QueryError:
        pass


def _check_error(error: queries.QueryError, text: str) -> None:
    """Every error knows its text and a position inside it, and draws a caret."""
    assert error.text == text
    assert error.line >= 1
    assert error.column >= 1
    assert str(error).split("\n")[-1].strip() == "^"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map(" ".join))
def test_tokens_know_where_they_stand(text: str) -> None:
    try:
        found = tokens.tokenize(text)
    except queries.QuerySyntaxError:
        return
    previous_end = 0
    for token in found:
        assert previous_end <= token.start <= token.end
        assert text[previous_end : token.start].strip() == ""
        if token.kind is not tokens.Kind.END:
            assert text[token.start : token.end].upper() == token.text.upper()
        before = text[: token.start]
        assert token.line == before.count("\n") + 1
        assert token.column == token.start - (before.rfind("\n") + 1) + 1
        previous_end = token.end
    assert found[-1].kind is tokens.Kind.END


def _same(actual: Any, expected: Any) -> bool:
    return type(actual) is type(expected) and (actual == expected or actual != actual)


@settings(max_examples=600, deadline=None)
@given(EXPRS, DOCS)
def test_compiled_agrees_with_reference(expr: nodes.Expr, doc: dict[str, Any]) -> None:
    expected = evaluating.evaluate(expr, doc)
    assert _same(compiling.compile_expr(expr)(doc), expected)
    assert queries.parse_condition(expr.to_sql()).matches(doc) is (expected is True)


def _group(value: Any) -> tuple[str, Any]:
    """What GROUP BY puts together: equal numbers (1 and 1.0), but never a bool with a number."""
    if value is UNDEFINED:
        return ("undefined", None)
    if type(value) is bool:
        return ("bool", value)
    if type(value) in (int, float):
        return ("number", float(value))
    return ("json", json.dumps(value, sort_keys=True))


@settings(max_examples=200, deadline=None)
@given(EXPRS, st.lists(DOCS, max_size=8), PATHS)
def test_group_by_count_agrees_with_a_plain_count(
    where: nodes.Expr, docs: list[dict[str, Any]], path: nodes.Path
) -> None:
    text = f"SELECT {path.to_sql()} AS k, COUNT() AS n FROM devices WHERE {where.to_sql()} "
    rows = queries.parse(text + f"GROUP BY {path.to_sql()}").run(docs)
    selected = [d for d in docs if evaluating.evaluate(where, d) is True]
    expected = collections.Counter(_group(evaluating.lookup(d, path.parts)) for d in selected)
    assert {_group(row.get("k", UNDEFINED)): row["n"] for row in rows} == expected
    assert len(rows) == len(expected)


def test_long_chains_of_one_operator_do_not_recurse() -> None:
    ids = ", ".join(f"deviceId = 'device-{i:04d}'" for i in range(280)).replace(", ", " OR ")
    query = queries.parse(f"SELECT * FROM devices WHERE {ids}")
    assert query.matches({"deviceId": "device-0279"})
    assert not query.matches({"deviceId": "device-0280"})
    total = queries.parse_condition(" + ".join(["a"] * 2000) + " = 2000")
    assert total.matches({"a": 1})


def test_deep_nesting_is_a_query_error() -> None:
    text = "SELECT * FROM devices WHERE " + "(" * 500 + "a = 1" + ")" * 500
    with pytest.raises(queries.UnsupportedQuery, match="nests more than 64 levels") as caught:
        queries.parse(text)
    assert caught.value.column == len("SELECT * FROM devices WHERE ") + 65  # the 65th "("
    fine = "SELECT * FROM devices WHERE " + "(" * 60 + "NOT a = 1" + ")" * 60
    assert queries.parse(fine).matches({"a": 2})


@given(st.text(alphabet=string.printable + "é✓'\"\\\u2028", max_size=40))
def test_a_quoted_string_is_one_literal_that_matches_exactly_itself(text: str) -> None:
    condition = queries.parse_condition(f"tags.name = {queries.quote(text)}")
    assert condition.matches({"deviceId": "d", "tags": {"name": text}})
    assert not condition.matches({"deviceId": "d", "tags": {"name": text + "x"}})
