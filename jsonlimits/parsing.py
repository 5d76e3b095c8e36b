"""Parse and check JSON from an untrusted peer, refusing what would exhaust the parser.

`json.loads` recurses once per nesting level (100,000 `[` raise `RecursionError`), converts
integers of any length (past 4,300 digits it raises `ValueError`), accepts `NaN` and `Infinity`,
and turns an escaped lone surrogate (`"\\ud800"`) into a string that cannot be encoded back to
UTF-8. `loads` checks what would go wrong before `json.loads` runs: the size; the nesting depth,
counted in one linear pass over the text with strings blanked out; number lengths, in the
parser's own number hooks; and, only when the text escapes a surrogate at all, that every
surrogate is paired. Every failure is a `JSONRefused` whose message names the problem.
`check` applies the same limits to a value some other code already parsed (the device SDK parses
twin patches and method payloads itself), walking it without recursion.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from jsonlimits.limits import DEFAULT_LIMITS, Limits

__all__ = ["JSONRefused", "check", "loads"]

# bytes.translate tables keeping only brackets, objects' spelled as arrays'
_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LOG10_2 = math.log10(2)


class JSONRefused(ValueError):
    """A JSON document the receiver will not process.

    Attributes:
        reason: a sentence naming what is wrong, e.g. "it nests arrays and objects more than
            64 deep".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse(reason: str) -> NoReturn:
    raise JSONRefused(reason)


def loads(data: bytes | bytearray | str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The value of the JSON document `data`, parsed within `limits`.

    Args:
        data: the document, as UTF-8 bytes or text.
        limits: the bounds it must stay within.

    Raises:
        JSONRefused: the document is too large, too deep, has an over-long or out-of-range
            number, is not valid UTF-8 or Unicode (a lone surrogate), or is not JSON.
    """
    size = len(data) if not isinstance(data, str) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        _refuse(f"it is {size} bytes; at most {limits.max_bytes} are allowed")
    if isinstance(data, str):
        text = data
        if _SURROGATE.search(text):
            _refuse("it contains a lone UTF-16 surrogate, which is not valid Unicode")
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            _refuse(f"it is not valid UTF-8 (byte {exc.start})")
    _check_depth(text, limits.max_depth)

    def parse_int(literal: str) -> int:
        if len(literal) > limits.max_number_chars:
            _refuse(
                f"it has a number of {len(literal)} characters; "
                f"at most {limits.max_number_chars} are allowed"
            )
        return int(literal)

    def parse_float(literal: str) -> float:
        if len(literal) > limits.max_number_chars:
            _refuse(
                f"it has a number of {len(literal)} characters; "
                f"at most {limits.max_number_chars} are allowed"
            )
        value = float(literal)
        if not math.isfinite(value):
            _refuse(f"the number {literal[:20]} is out of range")
        return value

    def parse_constant(name: str) -> NoReturn:
        _refuse(f"{name} is not a JSON value")

    try:
        value = json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"it is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if _ESCAPED_SURROGATE.search(text):
        _check_surrogates(value)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth`, in C-speed passes over the text.

    Escapes pair up from the left, so dropping every escaped backslash and then every escaped
    quote leaves quotes only where strings start and end; the text outside strings is then every
    other piece between quotes. Of that, only the brackets matter; each pass of `replace` drops
    the innermost (empty) containers, one level, so a document needs as many passes as it is
    deep. Brackets that never pair up are not JSON, and refused before the parser recurses.
    """
    plain = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(plain.split('"')[0::2]).encode("utf-8", "surrogatepass")
    brackets = outside.translate(_AS_ARRAYS, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            _refuse("it is not valid JSON: its brackets do not pair up")
        brackets = shorter
    if brackets:
        _refuse(f"it nests arrays and objects more than {max_depth} deep")


def _check_surrogates(value: Any) -> None:
    for item in _walk(value):
        if isinstance(item, str) and _SURROGATE.search(item):
            _refuse("it contains a lone UTF-16 surrogate, which is not valid Unicode")


def _walk(value: Any) -> Any:
    """Every value and key inside `value`, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check(value: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check an already-parsed JSON value against `limits`, without recursion.

    The size is estimated as JSON text would have it (string and key lengths, 8 bytes per other
    scalar, 2 per container).

    Raises:
        JSONRefused: the value is too large or too deep, holds an over-long or non-finite number,
            a lone surrogate, or something that is not a JSON value.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > limits.max_depth:
                _refuse(f"it nests arrays and objects more than {limits.max_depth} deep")
            size += 2
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        _refuse(f"it has a key of type {type(key).__name__}")
                    size += len(key) + 3
                    stack.append((key, depth + 1))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            size += len(item) + 2
            if _SURROGATE.search(item):
                _refuse("it contains a lone UTF-16 surrogate, which is not valid Unicode")
        elif isinstance(item, bool) or item is None:
            size += 5
        elif isinstance(item, int):
            digits = max(1, math.ceil(item.bit_length() * _LOG10_2))
            if digits > limits.max_number_chars:
                _refuse(
                    f"it has a number of about {digits} digits; "
                    f"at most {limits.max_number_chars} are allowed"
                )
            size += 8
        elif isinstance(item, float):
            if not math.isfinite(item):
                _refuse(f"{item} is not a JSON number")
            size += 8
        else:
            _refuse(f"it holds a {type(item).__name__}, which is not a JSON value")
        if size > limits.max_bytes:
            _refuse(f"it is more than {limits.max_bytes} bytes; at most that many are allowed")
