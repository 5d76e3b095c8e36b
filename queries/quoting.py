"""Putting a string into query text: the one way every caller builds a string literal."""

from __future__ import annotations

__all__ = ["quote"]


def quote(text: str) -> str:
    """`text` as a query string literal: in single quotes, with quotes and backslashes escaped,
    so that a device id or group name read from anywhere can never end the literal early.

    >>> quote("line 'a'")
    "'line \\\\'a\\\\''"
    """
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
