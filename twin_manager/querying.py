"""Local validation of queries with `queries/`, before anything goes over the network.

A query that parses may still match nothing for a reason the user would want to hear about (an
unquoted string, a misspelt root): those findings are logged as warnings on this module's logger,
each with its caret, and the query still runs, as it would on IoT Hub. A fleet that declared its
scheme (`twin_manager.schemes`) is stricter: a path the scheme does not have is an
`InvalidQuery`, with its caret and the closest declared path.
"""

from __future__ import annotations

import logging

import queries
from twin_manager import errors

__all__ = ["checked_condition", "checked_query"]

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
