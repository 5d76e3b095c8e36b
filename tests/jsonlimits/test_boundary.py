"""`jsonlimits`: what it refuses (naming why), and that it agrees with `json` on everything else."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jsonlimits

SMALL = jsonlimits.Limits(max_bytes=4096, max_depth=8, max_number_chars=30)


def _nested(depth: int, kinds: str = "[{") -> str:
    opening = "".join('{"k":' if kinds[i % len(kinds)] == "{" else "[" for i in range(depth))
    closing = "".join("}" if kinds[i % len(kinds)] == "{" else "]" for i in reversed(range(depth)))
    return opening + "1" + closing


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("[" * 100_000, "pair up"),
        ("[" * 100_000 + "]" * 100_000, "more than 64 deep"),
        (_nested(65, "{"), "more than 64 deep"),
        (_nested(65, "["), "more than 64 deep"),
        (_nested(65, "[{"), "more than 64 deep"),
        ('{"n": ' + "9" * 5000 + "}", "number of 5000 characters"),
        ('{"n": 1' + "0" * 200 + ".5}", "number of 203 characters"),
        ('{"n": 1e999}', "out of range"),
        ('{"n": NaN}', "NaN is not a JSON value"),
        ('{"n": -Infinity}', "-Infinity is not a JSON value"),
        ('{"s": "\\ud800"}', "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "lone UTF-16 surrogate"),
        ('["\\ude00\\ud83d"]', "lone UTF-16 surrogate"),
        ("{not json", "not valid JSON"),
        ("[1, 2]]", "pair up"),
        ('"' + "x" * (1024 * 1024) + '"', "bytes; at most 1048576"),
    ],
)
def test_hostile_documents_are_refused_naming_the_problem(document: str, named: str) -> None:
    for data in (document, document.encode("utf-8", "surrogatepass")):
        with pytest.raises(jsonlimits.JSONRefused) as refused:
            jsonlimits.loads(data)
        assert named in refused.value.reason


def test_invalid_utf8_and_raw_surrogates_are_refused() -> None:
    with pytest.raises(jsonlimits.JSONRefused, match="not valid UTF-8"):
        jsonlimits.loads(b'{"s": "\xff"}')
    with pytest.raises(jsonlimits.JSONRefused, match="not valid UTF-8"):
        jsonlimits.loads('{"s": "\ud800"}'.encode("utf-8", "surrogatepass"))
    with pytest.raises(jsonlimits.JSONRefused, match="lone UTF-16 surrogate"):
        jsonlimits.loads('{"s": "\ud800"}')


@pytest.mark.parametrize(
    "document",
    [
        _nested(64, "[{"),
        '{"pair": "\\ud83d\\ude00", "escaped": "\\\\ud800", "quote": "\\"[[[["}',
        '["[[[[[[[[[[", "{{{{{{", "\\\\", "\\\\\\""]',
        '{"n": 4503599627370495, "f": 0.1000000000000000055511151231257827021181583404541015625}',
        '[[], {}, [[]], {"a": [{}]}]',
    ],
)
def test_documents_within_the_limits_parse_as_json_does(document: str) -> None:
    assert jsonlimits.loads(document) == json.loads(document)
    assert jsonlimits.loads(document.encode()) == json.loads(document)


def test_depth_counts_arrays_and_objects_alike() -> None:
    for kinds in ("[", "{", "[{", "{["):
        jsonlimits.loads(_nested(8, kinds), SMALL)
        with pytest.raises(jsonlimits.JSONRefused, match="more than 8 deep"):
            jsonlimits.loads(_nested(9, kinds), SMALL)
        jsonlimits.check(json.loads(_nested(8, kinds)), SMALL)
        with pytest.raises(jsonlimits.JSONRefused, match="more than 8 deep"):
            jsonlimits.check(json.loads(_nested(9, kinds)), SMALL)


def test_check_refuses_what_loads_would() -> None:
    with pytest.raises(jsonlimits.JSONRefused, match="digits"):
        jsonlimits.check({"n": 10**400})
    with pytest.raises(jsonlimits.JSONRefused, match="surrogate"):
        jsonlimits.check(["ok", {"k": "\udc00"}])
    with pytest.raises(jsonlimits.JSONRefused, match="not a JSON number"):
        jsonlimits.check({"n": math.nan})
    with pytest.raises(jsonlimits.JSONRefused, match="not a JSON value"):
        jsonlimits.check({"n": object()})
    with pytest.raises(jsonlimits.JSONRefused, match="bytes"):
        jsonlimits.check(["x" * 1000] * 5, SMALL)
    deep: Any = 1
    for _ in range(100_000):  # built without recursion, checked without recursion
        deep = [deep]
    with pytest.raises(jsonlimits.JSONRefused, match="deep"):
        jsonlimits.check(deep)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**25), 10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300)
@given(value=json_values, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_boundary_agrees_with_json_within_the_limits(
    value: Any, ensure_ascii: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    limits = jsonlimits.Limits(max_bytes=10**6, max_depth=5, max_number_chars=30)
    if _depth(value) <= 5:
        assert jsonlimits.loads(text.encode(), limits) == json.loads(text)
        jsonlimits.check(value, limits)
    else:
        with pytest.raises(jsonlimits.JSONRefused, match="deep"):
            jsonlimits.loads(text.encode(), limits)
        with pytest.raises(jsonlimits.JSONRefused, match="deep"):
            jsonlimits.check(value, limits)


@settings(max_examples=500)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_are_refused_and_nothing_else(data: bytes) -> None:
    try:
        value = jsonlimits.loads(data, SMALL)
    except jsonlimits.JSONRefused as refused:
        reason = refused.reason
    else:
        reason = ""
        assert value == json.loads(data)
        json.dumps(value).encode()  # what passed the boundary can always be written back
    assert reason or value is not None or data.strip() == b"null"
