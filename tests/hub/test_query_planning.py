"""The query planner only narrows: a query run over the twins the index picks returns exactly what
the same query returns over every twin, whatever the twins and the condition.

A hypothesis state machine registers, patches (tags, desired, reported) and deletes devices in a
real registry over a real SQLite store, reopens it (the index is rebuilt from the file), and after
every step runs random conditions both ways. Values are chosen to collide across the language's
types ('5', 5, 5.0, true, 1, objects, arrays), where an index keyed by value alone would go wrong.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import queries
from local_hub import registry, store
from queries import nodes
from tests.hub.twin_strategies import CONDITIONS, IDS, PATCHES


def _queries(condition: nodes.Expr) -> list[queries.Query]:
    where = condition.to_sql()
    return [
        queries.parse(f"SELECT * FROM devices WHERE {where}"),
        queries.parse(f"SELECT deviceId, tags.a FROM devices WHERE {where}"),
        queries.parse(f"SELECT tags.a, COUNT() AS n FROM devices WHERE {where} GROUP BY tags.a"),
    ]


class IndexedEqualsFullScan(RuleBasedStateMachine):
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

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = store.Store(self.path)
        self.registry = registry.Registry(self.db, clock=time.time)

    @rule(condition=CONDITIONS)
    def query(self, condition: nodes.Expr) -> None:
        planned = self.registry.candidates(condition)
        every = list(self.registry.twins())
        for query in _queries(condition):
            expected = query.run(every)
            if planned is not None:
                assert query.run(self.registry.twins_of(planned)) == expected, query.text
                matched = {twin["deviceId"] for twin in every if query.matches(twin)}
                assert matched <= planned, query.text

    @invariant()
    def the_index_finds_each_twins_own_values(self) -> None:
        for twin in self.registry.twins():
            for path, value in (
                (("deviceId",), twin["deviceId"]),
                *((("tags", k), v) for k, v in twin["tags"].items()),
                *((("properties", "reported", k), v)
                  for k, v in twin["properties"]["reported"].items() if not k.startswith("$")),
            ):  # fmt: skip
                node = nodes.Binary("=", nodes.Path(path), nodes.Literal(value))
                if isinstance(value, dict | list):
                    continue
                planned = self.registry.candidates(node)
                assert planned is not None
                assert twin["deviceId"] in planned

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()


IndexedEqualsFullScan.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_indexed_results_equal_full_scan_results = IndexedEqualsFullScan.TestCase


def test_equality_keeps_the_languages_types(tmp_path: Path) -> None:
    db = store.Store(tmp_path / "hub.db")
    reg = registry.Registry(db, clock=time.time)
    try:
        for device_id, value in (("s", "5"), ("n", 5), ("f", 5.0), ("b", True), ("one", 1)):
            reg.create_device({"deviceId": device_id})
            reg.update_twin(device_id, {"tags": {"x": value}}, None)
        reg.create_device({"deviceId": "absent"})

        def found(text: str) -> list[str]:
            query = queries.parse(f"SELECT * FROM devices WHERE {text}")
            planned = reg.candidates(query.where)
            assert planned is not None, text
            return sorted(row["deviceId"] for row in query.run(reg.twins_of(planned)))

        assert found("tags.x = '5'") == ["s"]
        assert reg.candidates(queries.parse("SELECT * FROM devices WHERE tags.x = '5'").where) == {
            "s"
        }  # read one twin, not six
        assert found("tags.x = 5") == ["f", "n"]
        assert found("tags.x = true") == ["b"]
        assert found("tags.x = 1") == ["one"]
        assert found("tags.x = null") == []
        assert found("tags.x IN ['5', 1]") == ["one", "s"]
        assert found("tags.x = 5 AND deviceId = 'n'") == ["n"]
        assert found("deviceId = 'n' OR deviceId = 's'") == ["n", "s"]
        reg.update_twin("n", {"tags": {"x": None}}, None)
        assert found("tags.x = 5") == ["f"]
        unequal = queries.parse("SELECT * FROM devices WHERE tags.x != 5")
        assert reg.candidates(unequal.where) is None
    finally:
        db.close()
