"""Local validation of queries with `queries/`, before anything goes over the network."""

from __future__ import annotations

import queries
from twin_manager import errors

__all__ = ["checked_condition", "checked_query"]


def _invalid(exc: queries.QueryError) -> errors.InvalidQuery:
    return errors.InvalidQuery(str(exc), line=exc.line, column=exc.column)


def checked_query(text: str) -> queries.Query:
    """Parse `text` in strict mode (what IoT Hub accepts), or raise InvalidQuery."""
    try:
        return queries.parse(text, strict=True)
    except queries.QueryError as exc:
        raise _invalid(exc) from None


def checked_condition(text: str) -> queries.Condition:
    """Parse a bare condition in strict mode, or raise InvalidQuery."""
    try:
        return queries.parse_condition(text, strict=True)
    except queries.QueryError as exc:
        raise _invalid(exc) from None
