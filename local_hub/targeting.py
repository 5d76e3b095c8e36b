"""Which devices each automatic configuration targets and each of its metrics counts, kept up to
date device by device.

A configuration's sets are built once over the fleet when it is created or its target condition
or metric queries change (narrowed by the twin index when the condition gives it a handle, as a
query's WHERE does); after that, only the devices whose twins changed since the last pass are
looked at again. A pass during a campaign therefore costs the devices that moved, not the fleet:
a hub of 100,000 twins no longer re-reads them all a few times a second while devices report.

A metric whose query is an aggregate (rare: IoT Hub's metrics are `SELECT deviceId FROM devices
WHERE ...`) cannot be kept per device; it is counted over every twin on each pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import queries
from local_hub import registry
from queries import nodes

__all__ = ["Target", "Targeting"]

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Target:
    """A target condition, compiled: which twins it selects and the twin index's handle on it."""

    matches: Predicate
    where: nodes.Expr | None  # None: no handle (every twin is a candidate)
    nothing: bool = False  # it selects no twin at all

    @classmethod
    def of(cls, text: str | None) -> Target:
        """`*` selects every device; an empty or absent condition none (Microsoft's
        configuration sample creates one without a condition: it targets no device).

        Raises:
            QueryError: the text is not a condition IoT Hub accepts.
        """
        if text is None or not text.strip():
            return cls(lambda _twin: False, None, nothing=True)
        if text.strip() == "*":
            return cls(lambda _twin: True, None)
        condition = queries.parse_condition(text, strict=True)
        return cls(condition.matches, condition.node)


@dataclass(frozen=True)
class _Compiled:
    key: tuple[str, tuple[tuple[str, str], ...]]  # the texts it was compiled from
    priority: int
    target: Target
    metrics: dict[str, queries.Query]

    @classmethod
    def of(cls, config: dict[str, Any]) -> _Compiled:
        metrics = {name: queries.parse(text, strict=True)
                   for name, text in config["metrics"]["queries"].items()}  # fmt: skip
        return cls(_key(config), config["priority"], Target.of(config.get("targetCondition")),
                   metrics)  # fmt: skip


class Targeting:
    """The targeted devices and metric members of every configuration, on the hub's loop."""

    def __init__(self, hub_registry: registry.Registry) -> None:
        self._registry = hub_registry
        self._compiled: dict[str, _Compiled] = {}
        self.targeted: dict[str, set[str]] = {}
        self._counted: dict[str, dict[str, set[str]]] = {}
        self._changed: set[str] = set()

    def device_changed(self, device_id: str) -> None:
        """Note a twin that changed (or appeared, or went): the next `refresh` looks at it."""
        self._changed.add(device_id)

    def refresh(self, configs: Iterable[dict[str, Any]]) -> set[str]:
        """Bring every set up to date; returns the devices whose winning configuration may
        have changed (their twin changed, or a configuration that held or now holds them
        changed its condition or priority, or went)."""
        affected, self._changed = self._changed, set()
        current = {config["id"]: config for config in configs}
        for config_id in [c for c in self._compiled if c not in current]:
            del self._compiled[config_id]
            self._counted.pop(config_id, None)
            affected |= self.targeted.pop(config_id, set())
        for config_id, config in current.items():
            known = self._compiled.get(config_id)
            compiled = _Compiled.of(config) if known is None or known.key != _key(config) else None
            if compiled is not None:
                self._compiled[config_id] = compiled
                affected |= self.targeted.get(config_id, set())
                self._rebuild(config_id, compiled)
                affected |= self.targeted[config_id]
            elif known is not None and known.priority != config["priority"]:
                self._compiled[config_id] = dataclasses.replace(known, priority=config["priority"])
                affected |= self.targeted[config_id]
        for device_id in affected if self._compiled else ():
            twin = self._registry.twin_view(device_id)
            for config_id, compiled in self._compiled.items():
                self._place(config_id, compiled, device_id, twin)
        return affected

    def metric(self, config_id: str, name: str) -> int:
        """The value of one of a configuration's metrics: the devices its query selects."""
        query = self._compiled[config_id].metrics[name]
        if query.is_aggregate:
            return len(query.run(self._registry.twins()))
        count = len(self._counted[config_id][name])
        return count if query.top is None else min(count, query.top)

    def _rebuild(self, config_id: str, compiled: _Compiled) -> None:
        self.targeted[config_id] = set()
        self._counted[config_id] = {name: set() for name in compiled.metrics}
        target = compiled.target
        plans = [set() if target.nothing else self._plan(target.where)]
        plans += [self._plan(query.where) for query in compiled.metrics.values()]
        candidates: Iterable[str]
        if any(plan is None for plan in plans):
            candidates = self._registry.ordered_ids()
        else:
            candidates = set().union(*plans)  # type: ignore[arg-type]
        for device_id in candidates:
            self._place(config_id, compiled, device_id, self._registry.twin_view(device_id))

    def _plan(self, where: nodes.Expr | None) -> set[str] | None:
        return None if where is None else self._registry.candidates(where)

    def _place(
        self, config_id: str, compiled: _Compiled, device_id: str, twin: dict[str, Any] | None
    ) -> None:
        _put(
            self.targeted[config_id], device_id, twin is not None and compiled.target.matches(twin)
        )
        for name, query in compiled.metrics.items():
            if not query.is_aggregate:
                selected = twin is not None and query.matches(twin)
                _put(self._counted[config_id][name], device_id, selected)


def _key(config: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (
        str(config.get("targetCondition") or ""),
        tuple(sorted(config["metrics"]["queries"].items())),
    )


def _put(members: set[str], device_id: str, selected: bool) -> None:
    if selected:
        members.add(device_id)
    else:
        members.discard(device_id)
