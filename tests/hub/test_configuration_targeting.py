"""Configurations are evaluated device by device (`local_hub.targeting`): after any sequence of
twin changes and configuration changes, each configuration's targeted devices and metric counts
are exactly what a scan of every twin gives, though each pass looked only at what changed.

A hypothesis state machine drives a real registry over a real SQLite store, with the same random
conditions as the query planner's test (values that collide across the language's types).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

import queries
from local_hub import events, targeting
from queries import nodes
from tests.hub.twin_strategies import CONDITIONS, TwinMachine

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


class IncrementalEqualsFullScan(TwinMachine):
    def __init__(self) -> None:
        super().__init__()
        self.targeting = targeting.Targeting(self.registry)
        self.registry.add_listener(self._changed)
        self.configs: dict[str, dict[str, Any]] = {}

    def _changed(self, event: events.TwinEvent) -> None:
        self.targeting.device_changed(event.device_id)

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


IncrementalEqualsFullScan.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_incremental_targeting_equals_a_full_scan = IncrementalEqualsFullScan.TestCase
