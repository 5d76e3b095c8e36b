"""Aggregates and GROUP BY: COUNT(), AVG, SUM, MIN and MAX over the rows a query selects.

Aggregates skip values that are undefined or of the wrong type (AVG and SUM count numbers only;
MIN and MAX compare numbers with numbers, or strings with strings when no number is present). An
aggregate with nothing to aggregate is undefined and so absent from its row, except COUNT(),
which is 0. Groups come out in the order their first document was seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from queries import nodes
from queries.compiling import Compiled, compile_expr
from queries.values import UNDEFINED

__all__ = ["Aggregator", "group_rows"]


class Aggregator:
    """Accumulates one aggregate over the documents of one group, in constant memory."""

    __slots__ = ("_get", "_high", "_high_text", "_low", "_low_text", "_name", "_total", "count")

    def __init__(self, name: str, get: Compiled | None) -> None:
        self._name = name
        self._get = get
        self.count = 0  # documents seen (COUNT()) or numbers seen (AVG, SUM, MIN, MAX)
        self._total: Any = 0
        self._low: Any = None
        self._high: Any = None
        self._low_text: str | None = None
        self._high_text: str | None = None

    def add(self, doc: Any) -> None:
        """Take one document of the group into account."""
        get = self._get
        if get is None:
            self.count += 1
            return
        value = get(doc)
        kind = type(value)
        if kind is int or kind is float:
            self.count += 1
            self._total += value
            if self._low is None or value < self._low:
                self._low = value
            if self._high is None or value > self._high:
                self._high = value
        elif kind is str:
            if self._low_text is None or value < self._low_text:
                self._low_text = value
            if self._high_text is None or value > self._high_text:
                self._high_text = value

    def result(self) -> Any:
        """The aggregate's value, or UNDEFINED when nothing could be aggregated."""
        name = self._name
        if name == "COUNT":
            return self.count
        if name == "SUM":
            return self._total if self.count else UNDEFINED
        if name == "AVG":
            return self._total / self.count if self.count else UNDEFINED
        if name == "MIN":
            low = self._low if self.count else self._low_text
            return UNDEFINED if low is None else low
        high = self._high if self.count else self._high_text
        return UNDEFINED if high is None else high


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, sort_keys=True))
    if type(value) is bool:
        return ("bool", value)
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def group_rows(select: nodes.Select, docs: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows of an aggregate query over documents that already passed WHERE."""
    group_get = compile_expr(select.group_by) if select.group_by else None
    items: list[tuple[str, nodes.Aggregate | None]] = []
    keys = nodes.result_keys(select.projections)
    for key, projection in zip(keys, select.projections, strict=True):
        aggregate = projection.expr if isinstance(projection.expr, nodes.Aggregate) else None
        items.append((key, aggregate))
    getters = {
        key: (compile_expr(a.arg) if a.arg is not None else None)
        for key, a in items
        if a is not None
    }

    groups: dict[Any, tuple[Any, dict[str, Aggregator]]] = {}
    for doc in docs:
        value = group_get(doc) if group_get else UNDEFINED
        marker = _hashable(value)
        entry = groups.get(marker)
        if entry is None:
            accumulators = {
                key: Aggregator(a.name, getters[key]) for key, a in items if a is not None
            }
            entry = groups[marker] = (value, accumulators)
        for accumulator in entry[1].values():
            accumulator.add(doc)

    if not groups and group_get is None:
        groups[UNDEFINED] = (
            UNDEFINED,
            {key: Aggregator(a.name, getters[key]) for key, a in items if a is not None},
        )

    rows: list[dict[str, Any]] = []
    for value, accumulators in groups.values():
        row: dict[str, Any] = {}
        for key, aggregate in items:
            result = value if aggregate is None else accumulators[key].result()
            if result is not UNDEFINED:
                row[key] = result
        rows.append(row)
    return rows
