"""Errors raised for query text that cannot be parsed or run.

The tree::

    QueryError                 any problem with a query; carries the query text
    ├── QuerySyntaxError       the text is not a query: names what was expected and where
    └── UnsupportedQuery       a valid construct IoT Hub refuses here (e.g. in strict mode)

Both subclasses point at a position (line and column, 1-based) and render the query line with a
caret under it, so the message alone tells the user what to fix.
"""

from __future__ import annotations

__all__ = ["QueryError", "QuerySyntaxError", "UnsupportedQuery", "pointer"]


_WIDTH = 100  # longer query lines are shown as a window around the position


def pointer(text: str, line: int, column: int) -> str:
    """The query line at `line` with a caret under `column` (a window of it, if long)."""
    lines = text.split("\n")
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    shown = "".join(ch if ch.isprintable() else " " for ch in shown)
    offset = column - 1
    if len(shown) > _WIDTH:
        start = max(0, min(offset - _WIDTH // 2, len(shown) - _WIDTH))
        prefix = "..." if start > 0 else ""
        suffix = "..." if start + _WIDTH < len(shown) else ""
        shown = prefix + shown[start : start + _WIDTH] + suffix
        offset = offset - start + len(prefix)
    return f"  {shown}\n  {' ' * offset}^"


class QueryError(ValueError):
    """A query could not be parsed or is not accepted.

    Attributes:
        text: the whole query text.
        line: 1-based line of the problem.
        column: 1-based column of the problem.
        reason: the problem, without position or pointer.
    """

    def __init__(self, reason: str, text: str, line: int, column: int) -> None:
        self.reason = reason
        self.text = text
        self.line = line
        self.column = column
        super().__init__(
            f"{reason} at line {line}, column {column}:\n{pointer(text, line, column)}"
        )


class QuerySyntaxError(QueryError):
    """The text does not follow the query grammar.

    Attributes:
        expected: what the parser expected at the position (e.g. "FROM", "an expression").
        found: the text found there, or "end of query".
    """

    def __init__(self, expected: str, found: str, text: str, line: int, column: int) -> None:
        self.expected = expected
        self.found = found
        super().__init__(f"Expected {expected} but found {found}", text, line, column)


class UnsupportedQuery(QueryError):
    """The query is well formed but IoT Hub would refuse it (or strict mode forbids it)."""
