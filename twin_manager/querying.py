"""`Queries`: running IoT Hub queries page by page, validated locally before any request.

A query that parses may still match nothing for a reason the user would want to hear about (an
unquoted string, a misspelt root): those findings are logged as warnings on this module's logger,
each with its caret, and the query still runs, as it would on IoT Hub. A fleet that declared its
scheme (`twin_manager.schemes`) is stricter: a path the scheme does not have is an
`InvalidQuery`, with its caret and the closest declared path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

import queries
from twin_manager import errors, models, raw
from twin_manager._sdk import Sdk

__all__ = ["Queries", "checked_condition", "checked_query"]

log = logging.getLogger(__name__)


def _judge(findings: list[queries.QueryWarning]) -> None:
    for finding in findings:
        if finding.outside_scheme:
            raise errors.InvalidQuery(str(finding), line=finding.line, column=finding.column)
    for finding in findings:
        log.warning("%s", finding)


def _invalid(exc: queries.QueryError) -> errors.InvalidQuery:
    return errors.InvalidQuery(str(exc), line=exc.line, column=exc.column)


def checked_query(text: str, scheme: queries.Scheme | None = None) -> queries.Query:
    """Parse `text` in strict mode (what IoT Hub accepts), or raise InvalidQuery (also for a
    path outside `scheme`, when one is given)."""
    try:
        query = queries.parse(text, strict=True)
    except queries.QueryError as exc:
        raise _invalid(exc) from None
    _judge(queries.check(text, scheme=scheme))
    return query


def checked_condition(text: str, scheme: queries.Scheme | None = None) -> queries.Condition:
    """Parse a bare condition in strict mode, or raise InvalidQuery (also for a path outside
    `scheme`, when one is given)."""
    try:
        condition = queries.parse_condition(text, strict=True)
    except queries.QueryError as exc:
        raise _invalid(exc) from None
    _judge(queries.check_condition(text, scheme=scheme))
    return condition


def _where(condition: str | None) -> str:
    return f" WHERE {condition}" if condition else ""


class Queries:
    """IoT Hub queries over one hub's twins (`fleet.queries`).

    Each page is one request and one query of the hub's quota (S1: 20 a minute per unit), so
    `run` fetches pages only as the iteration needs them.

    Args:
        sdk: the hub's SDK seam.
        paths: the fleet scheme's declared paths: a query naming another is an InvalidQuery.
    """

    def __init__(self, sdk: Sdk, paths: queries.Scheme | None = None) -> None:
        self._sdk = sdk
        self._paths = paths

    def validate(self, text: str) -> None:
        """Raise InvalidQuery (with line and column) unless IoT Hub would accept `text` (and,
        with a fleet scheme, unless every path in it is declared)."""
        checked_query(text, self._paths)

    def validate_condition(self, text: str) -> None:
        """Raise InvalidQuery unless IoT Hub would accept `text` as a condition (what follows
        WHERE), with the position in `text` as written."""
        checked_condition(text, self._paths)

    def explain(self, text: str) -> str:
        """The query as the parser understood it (normalised, fully parenthesised)."""
        return checked_query(text, self._paths).select.to_sql()

    def run(self, text: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every row of a query, fetched page by page as the iteration needs them.

        Raises:
            InvalidQuery: before any request, when the text is not a valid query.
        """
        self.validate(text)
        continuation: str | None = None
        while True:
            page = self._sdk.query_page(text, continuation, page_size)
            yield from page["items"]
            continuation = page["continuation"]
            if not continuation:
                return

    def page(
        self, text: str, continuation: str | None = None, *, page_size: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a query (one request): its rows and the continuation token of the next
        page, None after the last page.

        Raises:
            InvalidQuery: before any request, when the text is not a valid query.
        """
        self.validate(text)
        page = self._sdk.query_page(text, continuation, page_size)
        return page["items"], page["continuation"]

    def twins(self, condition: str | None = None, *, page_size: int = 100) -> Iterator[models.Twin]:
        """Twins matching a condition (all twins when None)."""
        for row in self.run(f"SELECT * FROM devices{_where(condition)}", page_size=page_size):
            yield models.Twin.from_raw(cast(raw.RawTwin, row))

    def count(self, condition: str | None = None) -> int:
        """How many devices match `condition` (all when None)."""
        if condition is not None:
            self.validate_condition(condition)
        rows = list(self.run(f"SELECT COUNT() AS n FROM devices{_where(condition)}"))
        return int(rows[0]["n"]) if rows else 0

    def group_by(self, path: str, condition: str | None = None) -> dict[Any, int]:
        """`{value: count}` of a property over the devices matching `condition`.

        Devices lacking the property are counted under None.
        """
        text = (
            f"SELECT {path} AS value, COUNT() AS n FROM devices{_where(condition)} GROUP BY {path}"
        )
        return {row.get("value"): int(row["n"]) for row in self.run(text, page_size=1000)}
