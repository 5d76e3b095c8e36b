"""Random twins and conditions for the hub's property tests: values chosen to collide across the
query language's types ('5', 5, 5.0, true, 1, objects, arrays), where an index or an incremental
evaluation keyed by value alone would go wrong."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from queries import nodes
from queries.values import UNDEFINED

__all__ = ["CONDITIONS", "IDS", "PATCHES"]

IDS = [f"d{i}" for i in range(8)]
PRIMITIVES: list[Any] = ["5", 5, 5.0, True, False, 1, 0, "v", ""]
VALUES = st.one_of(
    st.sampled_from(PRIMITIVES),
    st.just([5]),
    st.just({"c": 5}),
    st.just({"c": "v", "d": True}),
    st.none(),  # deletes the property (a merge patch)
)
NAMES = ["a", "b", "c"]
PATCHES = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3)
PATHS = st.sampled_from([
    ("deviceId",), ("tags", "a"), ("tags", "b"), ("tags", "a", "c"), ("tags", "a", "d"),
    ("tags",), ("properties", "reported", "a"), ("properties", "reported", "b", "c"),
    ("properties", "desired", "a"), ("properties", "reported", "$version"), ("status",),
    ("tags", "zz"),
]).map(nodes.Path)  # fmt: skip
LITERALS = st.one_of(
    st.sampled_from([*PRIMITIVES, None, UNDEFINED]),
    st.sampled_from(IDS),
).map(nodes.Literal)
ARRAYS = st.lists(st.one_of(LITERALS, st.just(nodes.Array((nodes.Literal(5),)))), max_size=3).map(
    lambda items: nodes.Array(tuple(items))
)


def _conditions() -> st.SearchStrategy[nodes.Expr]:
    leaves = st.one_of(
        st.builds(nodes.Binary, st.just("="), PATHS, LITERALS),
        st.builds(nodes.Binary, st.just("="), LITERALS, PATHS),
        st.builds(nodes.Binary, st.just("="), PATHS, ARRAYS),
        st.builds(nodes.Binary, st.just("="), PATHS, PATHS),
        st.builds(nodes.Binary, st.sampled_from(["!=", "<", ">="]), PATHS, LITERALS),
        st.builds(nodes.In, PATHS, ARRAYS, st.booleans()),
        st.builds(nodes.Call, st.just("IS_DEFINED"), st.tuples(PATHS)),
    )

    def extend(children: st.SearchStrategy[nodes.Expr]) -> st.SearchStrategy[nodes.Expr]:
        return st.one_of(
            st.builds(nodes.Binary, st.sampled_from(["AND", "OR"]), children, children),
            st.builds(nodes.Unary, st.just("NOT"), children),
        )

    return st.recursive(leaves, extend, max_leaves=5)


CONDITIONS = _conditions()
