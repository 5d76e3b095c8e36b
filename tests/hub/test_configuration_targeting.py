"""Configurations are evaluated device by device (`local_hub.targeting`): after any sequence of
twin changes and configuration changes, each configuration's targeted devices and metric counts
are exactly what a scan of every twin gives, though each pass looked only at what changed.

A hypothesis state machine drives a real registry over a real SQLite store, with the same random
conditions as the query planner's test (values that collide across the language's types).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import queries
from local_hub import events, registry, store, targeting
from queries import nodes
from tests.hub.twin_strategies import CONDITIONS, IDS, PATCHES

CONFIG_IDS = ["c1", "c2", "c3"]


def _config(config_id: str, condition: str, metric: str, priority: int) -> dict[str, Any]:
    return {
        "id": config_id,
        "targetCondition": condition,
        "priority": priority,
        "metrics": {"queries": {"m": f"SELECT deviceId FROM devices WHERE {metric}"}},
    }


def _strict(condition: nodes.Expr) -> str:
    text = condition.to_sql()
    try:
        queries.parse_condition(text, strict=True)
    except queries.QueryError:
        assume(False)
    return text


class IncrementalEqualsFullScan(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.db = store.Store(Path(self.tmp.name) / "hub.db")
        self.registry = registry.Registry(self.db, clock=time.time)
        self.targeting = targeting.Targeting(self.registry)
        self.registry.add_listener(self._changed)
        self.configs: dict[str, dict[str, Any]] = {}

    def _changed(self, event: events.TwinEvent) -> None:
        self.targeting.device_changed(event.device_id)

    @initialize(count=st.integers(1, 5))
    def register(self, count: int) -> None:
        for device_id in IDS[:count]:
            self.registry.create_device({"deviceId": device_id})

    @rule(device_id=st.sampled_from(IDS))
    def create(self, device_id: str) -> None:
        if self.registry.get_device(device_id) is None:
            self.registry.create_device({"deviceId": device_id})

    @precondition(lambda self: len(self.registry) > 0)
    @rule(data=st.data(), tags=PATCHES, desired=PATCHES, reported=PATCHES)
    def patch(self, data: st.DataObject, tags: dict[str, Any], desired: dict[str, Any],
              reported: dict[str, Any]) -> None:  # fmt: skip
        device_id = data.draw(st.sampled_from(list(self.registry.ordered_ids())))
        self.registry.update_twin(device_id, {"tags": tags, "properties": {"desired": desired}},
                                  None)  # fmt: skip
        self.registry.patch_reported(device_id, reported)

    @precondition(lambda self: len(self.registry) > 0)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        device_id = data.draw(st.sampled_from(list(self.registry.ordered_ids())))
        self.registry.delete_device(device_id, None)

    @rule(config_id=st.sampled_from(CONFIG_IDS), condition=CONDITIONS, metric=CONDITIONS,
          special=st.sampled_from([None, "*", ""]), priority=st.integers(0, 2))  # fmt: skip
    def put_configuration(self, config_id: str, condition: nodes.Expr, metric: nodes.Expr,
                          special: str | None, priority: int) -> None:  # fmt: skip
        text = special if special is not None else _strict(condition)
        self.configs[config_id] = _config(config_id, text, _strict(metric), priority)

    @precondition(lambda self: bool(self.configs))
    @rule(data=st.data(), priority=st.integers(0, 2))
    def reprioritise(self, data: st.DataObject, priority: int) -> None:
        config_id = data.draw(st.sampled_from(sorted(self.configs)))
        self.configs[config_id] = {**self.configs[config_id], "priority": priority}

    @precondition(lambda self: bool(self.configs))
    @rule(data=st.data())
    def remove_configuration(self, data: st.DataObject) -> None:
        del self.configs[data.draw(st.sampled_from(sorted(self.configs)))]

    @invariant()
    def each_configuration_holds_what_a_full_scan_finds(self) -> None:
        self.targeting.refresh(list(self.configs.values()))
        twins = list(self.registry.twins())
        assert set(self.targeting.targeted) == set(self.configs)
        for config_id, config in self.configs.items():
            target = targeting.Target.of(config["targetCondition"])
            expected = {twin["deviceId"] for twin in twins if target.matches(twin)}
            assert self.targeting.targeted[config_id] == expected, config["targetCondition"]
            metric = queries.parse(config["metrics"]["queries"]["m"], strict=True)
            assert self.targeting.metric(config_id, "m") == len(metric.run(twins))

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()


IncrementalEqualsFullScan.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_incremental_targeting_equals_a_full_scan = IncrementalEqualsFullScan.TestCase
