"""The tokenizer: query text to a list of tokens that know where they stand."""

from __future__ import annotations

import bisect
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from queries import errors

__all__ = ["KEYWORDS", "Kind", "Token", "tokenize"]


class Kind(enum.Enum):
    """What a token is."""

    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    END = "end of query"


KEYWORDS = frozenset(
    {
        "SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT",
        "IN", "NIN", "TRUE", "FALSE", "NULL", "UNDEFINED",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text (keywords upper-cased), its value and its position.

    `start` and `end` are offsets into the query text; `line` and `column` are 1-based.
    """

    kind: Kind
    text: str
    value: object
    line: int
    column: int
    start: int
    end: int

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.END:
            return "end of query"
        return f"{self.kind.value} {self.text!r}" if self.kind is not Kind.OP else repr(self.text)


_ESCAPES = dict(zip("'\"\\/bfnrt", "'\"\\/\b\f\n\r\t", strict=True))
_OPERATORS = ("<=", ">=", "<>", "!=", *"=<>+-*/%()[],.")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = "0123456789"  # str.isdigit() also says yes to "²" and "٣", which no number holds
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SPACE = re.compile(r"\s+")


class _Position:
    """Turns offsets into (line, column) for one text."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1


def tokenize(text: str) -> list[Token]:
    """Split query text into tokens, ending with one END token.

    Raises:
        QuerySyntaxError: on a character no token starts with, or an unterminated string.
    """
    where = _Position(text)
    out: list[Token] = []
    i, n = 0, len(text)

    def fail(expected: str, found: str, offset: int) -> errors.QuerySyntaxError:
        line, column = where.at(offset)
        return errors.QuerySyntaxError(expected, found, text, line, column)

    def add(kind: Kind, word: str, value: object, start: int, end: int) -> None:
        line, column = where.at(start)
        out.append(Token(kind, word, value, line, column, start, end))

    while i < n:
        ch = text[i]
        if ch.isspace():
            match = _SPACE.match(text, i)
            assert match is not None
            i = match.end()
            continue
        if ch in "'\"":
            value, end = _read_string(text, i, fail)
            add(Kind.STRING, text[i:end], value, i, end)
            i = end
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            match = _NUMBER.match(text, i)
            assert match is not None
            word = match.group()
            if match.end() < n and (text[match.end()].isalnum() or text[match.end()] == "_"):
                raise fail("a number", repr(text[i : match.end() + 1]), i)
            number = _number(word)
            if number is None:
                raise fail("a number a JSON document can hold (a double)", repr(word[:20]), i)
            add(Kind.NUMBER, word, number, i, match.end())
            i = match.end()
            continue
        match = _IDENT.match(text, i)
        if match:
            word = match.group()
            upper = word.upper()
            if upper in KEYWORDS:
                add(Kind.KEYWORD, upper, word, i, match.end())
            else:
                add(Kind.IDENT, word, word, i, match.end())
            i = match.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                add(Kind.OP, op, op, i, i + len(op))
                i += len(op)
                break
        else:
            raise fail("a token", repr(ch), i)
    add(Kind.END, "", None, n, n)
    return out


_MAX_DIGITS = 309  # a decimal integer longer than this is past the largest double


def _number(word: str) -> int | float | None:
    """The value of a number token, or None when no double can hold it."""
    if word[:2] in ("0x", "0X"):
        if len(word) - 2 > 256:
            return None
        return int(word, 16)
    if any(c in word for c in ".eE"):
        value = float(word)
        return value if math.isfinite(value) else None
    if len(word) > _MAX_DIGITS:
        return None
    return int(word)


_Fail = Callable[[str, str, int], errors.QuerySyntaxError]


def _read_string(text: str, start: int, fail: _Fail) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(chars), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = text[i + 1]
            if esc == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise fail("four hex digits after \\u", repr(digits), i)
                chars.append(chr(int(digits, 16)))
                i += 6
                continue
            if esc not in _ESCAPES:
                raise fail(
                    "an escape (\\' \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", repr("\\" + esc), i
                )
            chars.append(_ESCAPES[esc])
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise fail(f"a closing {quote}", "end of query", start)
