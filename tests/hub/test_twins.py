"""Twin documents (pure): merge patches, metadata, and IoT Hub's limits with clear messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_hub import errors, twins

NOW = "2026-01-02T03:04:05.678Z"


def _apply(section: dict[str, Any], patch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    twins.validate_patch("desired", patch)
    options: dict[str, Any] = {"now": NOW, "version": 2, "limit": 32 * 1024, "name": "desired"}
    new, _ = twins.apply_patch(section, {}, patch, **{**options, **kwargs})
    return new


def test_merge_patch_merges_objects_replaces_values_and_deletes_nulls() -> None:
    section = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": "keep"}
    patch = {"a": {"x": None, "z": {"deep": True}}, "b": None, "d": 4.5, "c": {"now": "object"}}
    assert _apply(section, patch) == {
        "a": {"y": 2, "z": {"deep": True}},
        "c": {"now": "object"},
        "d": 4.5,
    }
    assert section == {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": "keep"}  # inputs untouched


def test_metadata_stamps_every_changed_level() -> None:
    later = "2026-01-02T03:05:00.000Z"
    section, meta = twins.apply_patch(
        {}, {}, {"fw": {"version": "1.0", "size": 3}}, now=NOW, version=2, limit=None, name="d"
    )
    section, meta = twins.apply_patch(
        section, meta, {"fw": {"size": 4}, "gone": None}, now=later, version=3, limit=None,
        name="d",
    )  # fmt: skip
    assert meta["$lastUpdated"] == later
    assert meta["$lastUpdatedVersion"] == 3
    assert meta["fw"]["$lastUpdated"] == later
    assert meta["fw"]["size"] == {"$lastUpdated": later, "$lastUpdatedVersion": 3}
    assert meta["fw"]["version"] == {"$lastUpdated": NOW, "$lastUpdatedVersion": 2}
    _, reported_meta = twins.apply_patch(
        {}, {}, {"a": 1}, now=NOW, version=None, limit=None, name="r"
    )
    assert reported_meta["a"] == {"$lastUpdated": NOW}  # reported carries no version stamps


def _nested(levels: int) -> dict[str, Any]:
    """{"l1": {"l2": ... {"l<levels>": {"property": "value"}}}}."""
    inner: dict[str, Any] = {"property": "value"}
    for level in range(levels, 0, -1):
        inner = {f"l{level}": inner}
    return inner


def test_depth_counts_as_iot_hub_documents_it() -> None:
    twins.validate_patch("tags", _nested(10))  # the documented valid example: ten levels
    with pytest.raises(
        errors.BadRequest, match=r"tags\.l1\.l2.*11 deep; IoT Hub allows at most 10"
    ):
        twins.validate_patch("tags", _nested(11))
    with pytest.raises(errors.BadRequest, match="deep"):
        twins.validate_patch("reported", {"list": [_nested(10)]})


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"a.b": 1}, "properties.desired.*may not contain '.'"),
        ({"$a": 1}, "may not contain '\\$'"),
        ({"a b": 1}, "may not contain ' '"),
        ({"a\nb": 1}, "control character"),
        ({"a\x85b": 1}, "control character"),  # C1
        ({"": 1}, "1 to 1024 bytes"),
        ({"k" * 1025: 1}, "1 to 1024 bytes"),
        ({"outer": {"in.ner": 1}}, "in properties.desired.outer"),
        ({"s": "x" * 4097}, r"properties.desired.s is a string of more than 4096 bytes"),
        ({"n": 4503599627370496}, "outside IoT Hub's range"),
        ({"n": -4503599627370497}, "outside IoT Hub's range"),
        ({"n": float("nan")}, "not a JSON number"),
        ({"n": float("inf")}, "not a JSON number"),
    ],
)
def test_key_and_value_rules_name_the_property(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(errors.BadRequest, match=words):
        twins.validate_patch("desired", patch)


def test_boundaries_that_are_allowed() -> None:
    twins.validate_patch(
        "desired",
        {"k" * 1024: "x" * 4096, "n": 4503599627370495, "m": -4503599627370496, "t": True},
    )
    with pytest.raises(errors.BadRequest, match="must be a JSON object, not list"):
        twins.validate_patch("tags", [1])


def test_section_size_is_counted_as_iot_hub_documents() -> None:
    assert (
        twins.section_size({"ab": "héllo", "n": 1, "f": 1.5, "b": False})
        == 2 + 6 + 1 + 8 + 1 + 8 + 1 + 4
    )
    assert twins.section_size({"o": {"k": "v"}, "l": ["ab", 1]}) == 1 + 2 + 1 + 2 + 8
    assert twins.section_size({"ctl": "a\x00\x9fb"}) == 3 + 2  # control characters are free


def _counted(value: Any) -> int:
    """IoT Hub's documented count, a character at a time (the reference for `section_size`)."""
    if isinstance(value, dict):
        return sum(len(k.encode()) + _counted(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_counted(item) for item in value)
    if isinstance(value, bool):
        return 4
    if isinstance(value, int | float):
        return 8
    if isinstance(value, str):
        return sum(len(c.encode()) for c in value if not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F))
    return 0


_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF, blacklist_categories=("Cs",)))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(_TEXT, _JSON, max_size=5))
def test_section_size_equals_the_documented_count_character_by_character(
    section: dict[str, Any],
) -> None:
    assert twins.section_size(section) == _counted(section)


@given(_TEXT)
def test_a_key_with_a_control_character_is_refused_and_any_other_key_passes(key: str) -> None:
    control = any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key)
    forbidden = not key or any(c in key for c in ".$ ") or len(key.encode()) > 1024
    if control or forbidden:
        with pytest.raises(errors.BadRequest):
            twins.validate_patch("tags", {key: 1})
    else:
        twins.validate_patch("tags", {key: 1})


def test_size_limit_refuses_the_patch_that_would_exceed_it() -> None:
    full = {f"k{i:02d}": "v" * 1000 for i in range(8)}  # 8 * 1003 bytes
    assert twins.section_size(full) <= 8192
    with pytest.raises(
        errors.BadRequest, match=r"tags section would be 9047 bytes; .* at most 8192"
    ):
        twins.apply_patch(
            full, {}, {"more": "v" * 1019}, now=NOW, version=None, limit=8192, name="tags"
        )
    shrunk, _ = twins.apply_patch(
        full, {}, {"k00": None}, now=NOW, version=None, limit=8192, name="tags"
    )
    assert len(shrunk) == 7


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda children: st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(st.text("abcd", min_size=1, max_size=3), json_values, max_size=5)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(old=documents, new=documents)
def test_diff_then_apply_reaches_the_target(old: dict[str, Any], new: dict[str, Any]) -> None:
    old, new = _without_nulls(old), _without_nulls(new)
    patch = twins.diff_patch(old, new)
    assert _apply(old, patch, limit=None) == new
    assert twins.diff_patch(new, new) == {}
    json.dumps(patch)  # a patch is always plain JSON
