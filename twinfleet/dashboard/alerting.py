"""Alert rules evaluated over saved queries: pending, firing, resolved, and a webhook.

Each evaluation reads every rule's query through the shared cache (so alerts cost no more than
the budget allows), then moves each rule's state:

    ok --(condition holds)--> pending --(held for for_seconds)--> firing --(no longer)--> ok

A rule whose query fails (budget spent, hub down) keeps its state and shows the error. Moving to
firing, and back to ok, POSTs `{"rule", "state", "value", "condition", "query"}` to the rule's
webhook, if any; a webhook that fails is logged, never retried into a storm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from twinfleet.dashboard import storage

__all__ = ["AlertEngine", "AlertState", "value_of"]

log = logging.getLogger(__name__)

State = Literal["ok", "pending", "firing"]


def value_of(rows: list[dict[str, Any]]) -> float:
    """The first number in the first row (0 when there is no row or no number)."""
    for value in (rows[0] if rows else {}).values():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


@dataclass
class AlertState:
    rule: storage.AlertRule
    state: State = "ok"
    value: float | None = None
    since: float | None = None
    error: str | None = None
    checked_at: float | None = None


class AlertEngine:
    """The states of every rule of a store.

    Args:
        store: where the rules and their queries live.
        clock: wall-clock seconds, injectable for tests.
    """

    def __init__(self, store: storage.Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._states: dict[str, AlertState] = {}
        self.notifications = 0

    @property
    def states(self) -> list[AlertState]:
        rules = {rule.name: rule for rule in self.store.alerts}
        for name in list(self._states):
            if name not in rules:
                del self._states[name]
        for name, rule in rules.items():
            state = self._states.setdefault(name, AlertState(rule))
            if state.rule != rule:
                self._states[name] = AlertState(rule)
        return [self._states[name] for name in sorted(self._states)]

    @property
    def firing(self) -> list[AlertState]:
        return [s for s in self.states if s.state == "firing"]

    async def evaluate(
        self, rows_of: Callable[[storage.SavedQuery], Awaitable[list[dict[str, Any]]]]
    ) -> None:
        """One pass over every rule; `rows_of` runs a saved query (through the cache)."""
        for state in self.states:
            query = self.store.query(state.rule.query)
            if query is None:
                state.error = f"saved query {state.rule.query!r} is gone"
                continue
            try:
                rows = await rows_of(query)
            except Exception as exc:  # the page shows why; the next pass tries again
                state.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                continue
            state.error = None
            await self._advance(state, value_of(rows))

    async def _advance(self, state: AlertState, value: float) -> None:
        now = self._clock()
        state.value = value
        state.checked_at = now
        rule = state.rule
        if not rule.holds(value):
            if state.state == "firing":
                await self._notify(state, "resolved")
            state.state, state.since = "ok", None
            return
        if state.state == "ok":
            state.state, state.since = "pending", now
        if state.state == "pending" and now - (state.since or now) >= rule.for_seconds:
            state.state = "firing"
            await self._notify(state, "firing")

    async def _notify(self, state: AlertState, what: str) -> None:
        log.warning(
            "alert %s %s (value %g %s)",
            state.rule.name,
            what,
            state.value or 0,
            state.rule.condition,
        )
        webhook = state.rule.webhook
        if not webhook:
            return
        body = {
            "rule": state.rule.name,
            "state": what,
            "value": state.value,
            "condition": state.rule.condition,
            "query": state.rule.query,
        }
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(webhook, json=body) as response,
            ):
                if response.status >= 300:
                    log.warning(
                        "alert webhook for %s answered %d", state.rule.name, response.status
                    )
            self.notifications += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert webhook for %s failed: %s", state.rule.name, type(exc).__name__)
