"""Random twins and conditions for the hub's property tests, and the state machine they share: a
real registry over a real SQLite store whose devices are registered, patched (tags, desired,
reported) and deleted at random. Values are chosen to collide across the query language's types
('5', 5, 5.0, true, 1, objects, arrays), where an index or an incremental evaluation keyed by
value alone would go wrong."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from local_hub import registry, store
from queries import nodes
from queries.values import UNDEFINED

__all__ = ["CONDITIONS", "IDS", "PATCHES", "TwinMachine"]

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


class TwinMachine(RuleBasedStateMachine):
    """Devices registered, patched and deleted at random; subclasses add rules and checks."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "hub.db"
        self.db = store.Store(self.path)
        self.registry = registry.Registry(self.db, clock=time.time)

    @initialize(count=st.integers(1, 5))
    def register(self, count: int) -> None:
        for device_id in IDS[:count]:
            self.registry.create_device({"deviceId": device_id})

    @rule(device_id=st.sampled_from(IDS))
    def create(self, device_id: str) -> None:
        if self.registry.get_device(device_id) is None:
            self.registry.create_device({"deviceId": device_id})

    @precondition(lambda self: len(self.registry) > 0)
    @rule(data=st.data(), tags=PATCHES, desired=PATCHES, replace=st.booleans())
    def patch_service(self, data: st.DataObject, tags: dict[str, Any],
                      desired: dict[str, Any], replace: bool) -> None:  # fmt: skip
        device_id = data.draw(st.sampled_from(list(self.registry.ordered_ids())))
        if replace:  # a replace sends whole sections (no nulls)
            tags = {k: v for k, v in tags.items() if v is not None}
            desired = {k: v for k, v in desired.items() if v is not None}
        body = {"tags": tags, "properties": {"desired": desired}}
        self.registry.update_twin(device_id, body, None, replace=replace)

    @precondition(lambda self: len(self.registry) > 0)
    @rule(data=st.data(), patch=PATCHES)
    def patch_reported(self, data: st.DataObject, patch: dict[str, Any]) -> None:
        device_id = data.draw(st.sampled_from(list(self.registry.ordered_ids())))
        self.registry.patch_reported(device_id, patch)

    @precondition(lambda self: len(self.registry) > 0)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        device_id = data.draw(st.sampled_from(list(self.registry.ordered_ids())))
        self.registry.delete_device(device_id, None)

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()
