"""Aggregates and GROUP BY: COUNT(), AVG, SUM, MIN and MAX over the rows a query selects.

Aggregates skip values that are undefined or of the wrong type (AVG and SUM count numbers only;
MIN and MAX compare numbers with numbers, or strings with strings when no number is present). An
aggregate with nothing to aggregate is undefined and so absent from its row, except COUNT(),
which is 0. Groups come out in the order their first document was seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from queries import nodes
from queries.compiling import Compiled, compile_expr
from queries.values import UNDEFINED, is_number

__all__ = ["Aggregator", "group_rows", "result_key"]


def result_key(projection: nodes.Projection, position: int) -> str:
    """The key a SELECT item has in result rows: its alias, a path's last name, or `$N`."""
    if projection.alias:
        return projection.alias
    if isinstance(projection.expr, nodes.Path):
        return projection.expr.parts[-1]
    return f"${position}"


class Aggregator:
    """Accumulates one aggregate over the documents of one group."""

    __slots__ = ("_count", "_get", "_name", "_numbers", "_strings")

    def __init__(self, name: str, get: Compiled | None) -> None:
        self._name = name
        self._get = get
        self._count = 0
        self._numbers: list[float] = []
        self._strings: list[str] = []

    def add(self, doc: Any) -> None:
        self._count += 1
        if self._get is None:
            return
        value = self._get(doc)
        if is_number(value):
            self._numbers.append(value)
        elif type(value) is str:
            self._strings.append(value)

    def result(self) -> Any:
        name, numbers = self._name, self._numbers
        if name == "COUNT":
            return self._count
        if name == "SUM":
            return sum(numbers) if numbers else UNDEFINED
        if name == "AVG":
            return sum(numbers) / len(numbers) if numbers else UNDEFINED
        pick: Callable[[Iterable[Any]], Any] = min if name == "MIN" else max
        if numbers:
            return pick(numbers)
        return pick(self._strings) if self._strings else UNDEFINED


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
    for position, projection in enumerate(select.projections, start=1):
        aggregate = projection.expr if isinstance(projection.expr, nodes.Aggregate) else None
        items.append((result_key(projection, position), aggregate))
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
