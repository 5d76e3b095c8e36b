"""`Query` and `Condition`: parsed query text, ready to match and run over twin documents."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from queries import aggregating, compiling, nodes, parser
from queries.values import UNDEFINED

__all__ = ["Condition", "Query", "parse", "parse_condition"]


class Condition:
    """A bare condition (a job's `queryCondition`, a configuration's `targetCondition`).

    Attributes:
        text: the condition as written.
        node: its AST.
    """

    def __init__(self, text: str, node: nodes.Expr) -> None:
        self.text = text
        self.node = node
        self._predicate = compiling.compile_predicate(node)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """True when the condition evaluates to boolean true for `doc`."""
        return self._predicate(doc)

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


class Query:
    """A parsed `SELECT` query.

    Attributes:
        text: the query as written.
        select: its AST.
    """

    def __init__(self, text: str, select: nodes.Select) -> None:
        self.text = text
        self.select = select
        self._predicate = compiling.compile_predicate(select.where)
        keys = nodes.result_keys(select.projections)
        self._projections = [
            (key, compiling.compile_expr(p.expr))
            for key, p in zip(keys, select.projections, strict=True)
            if not isinstance(p.expr, nodes.Aggregate)
        ]

    @property
    def source(self) -> str:
        """`devices` or `devices.jobs`."""
        return self.select.source

    @property
    def where(self) -> nodes.Expr | None:
        """The WHERE condition's AST, if any."""
        return self.select.where

    @property
    def top(self) -> int | None:
        """The TOP limit, if any."""
        return self.select.top

    @property
    def is_aggregate(self) -> bool:
        """True when the SELECT list holds an aggregate (COUNT(), AVG, ...)."""
        return any(isinstance(p.expr, nodes.Aggregate) for p in self.select.projections)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """True when the WHERE condition (if any) is boolean true for `doc`."""
        return self._predicate(doc)

    def run(self, docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Filter, group, aggregate, project and limit, as IoT Hub returns the result."""
        predicate = self._predicate
        selected = (doc for doc in docs if predicate(doc))
        top = self.select.top
        if self.is_aggregate:
            rows = aggregating.group_rows(self.select, selected)
            return rows if top is None else rows[:top]
        out: list[dict[str, Any]] = []
        if top == 0:
            return out
        projections = self._projections
        for doc in selected:
            if projections:
                row = {}
                for key, get in projections:
                    value = get(doc)
                    if value is not UNDEFINED:
                        row[key] = value
                out.append(row)
            else:
                out.append(dict(doc))
            if top is not None and len(out) >= top:
                break
        return out

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def parse(text: str, *, strict: bool = False) -> Query:
    """Parse a query.

    Args:
        text: the query, e.g. `SELECT * FROM devices WHERE tags.location.region = 'US'`.
        strict: refuse what IoT Hub refuses in twin queries (functions other than IS_DEFINED).

    Raises:
        QuerySyntaxError: the text is not a query (names what was expected, and where).
        UnsupportedQuery: a construct IoT Hub does not accept here.
    """
    return Query(text, parser.parse_select(text, strict=strict))


def parse_condition(text: str, *, strict: bool = False) -> Condition:
    """Parse a bare condition such as `tags.ring = 'canary' AND status = 'enabled'`.

    Raises:
        QuerySyntaxError, UnsupportedQuery: as `parse`.
    """
    return Condition(text, parser.parse_condition(text, strict=strict))
