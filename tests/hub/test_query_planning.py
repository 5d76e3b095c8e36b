"""The query planner only narrows: a query run over the twins the index picks returns exactly what
the same query returns over every twin, whatever the twins and the condition.

A hypothesis state machine registers, patches (tags, desired, reported) and deletes devices in a
real registry over a real SQLite store, reopens it (the index is rebuilt from the file), and after
every step runs random conditions both ways. Values are chosen to collide across the language's
types ('5', 5, 5.0, true, 1, objects, arrays), where an index keyed by value alone would go wrong.
"""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import (
    invariant,
    rule,
)

import queries
from local_hub import registry, store
from queries import nodes
from tests.hub.twin_strategies import CONDITIONS, TwinMachine


def _queries(condition: nodes.Expr) -> list[queries.Query]:
    where = condition.to_sql()
    return [
        queries.parse(f"SELECT * FROM devices WHERE {where}"),
        queries.parse(f"SELECT deviceId, tags.a FROM devices WHERE {where}"),
        queries.parse(f"SELECT tags.a, COUNT() AS n FROM devices WHERE {where} GROUP BY tags.a"),
    ]


class IndexedEqualsFullScan(TwinMachine):
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
