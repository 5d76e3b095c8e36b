"""Twin documents: merge patches, versions, metadata and IoT Hub's limits. Pure functions.

A twin section (tags, desired, reported) is patched with JSON merge-patch semantics: an object
merges key by key, `null` deletes, anything else replaces. Every patch bumps the section's
`$version`; `$metadata` mirrors the section with `$lastUpdated` (and, for desired,
`$lastUpdatedVersion`) per property. A patch is validated whole before anything changes, so a bad
patch never leaves a twin half-written.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from local_hub import errors

__all__ = [
    "DEPTH_LIMIT",
    "INTEGER_RANGE",
    "SIZE_LIMITS",
    "apply_patch",
    "diff_patch",
    "section_size",
    "validate_patch",
]

SIZE_LIMITS = {"tags": 8 * 1024, "desired": 32 * 1024, "reported": 32 * 1024}
DEPTH_LIMIT = 10
INTEGER_RANGE = (-4503599627370496, 4503599627370495)
_KEY_LIMIT = 1024
_STRING_LIMIT = 4 * 1024
_FORBIDDEN_IN_KEYS = (".", "$", " ")


# Unicode control characters of segments C0 and C1 (and DEL). Twins are validated and measured
# on every write, so strings are scanned by the regex engine, not a character at a time.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _text_size(text: str) -> int:
    """A string's UTF-8 bytes, control characters not counted."""
    if _CONTROL.search(text) is not None:
        text = _CONTROL.sub("", text)
    return len(text.encode())


def _value_size(value: Any) -> int:
    if isinstance(value, dict):
        return section_size(value)
    if isinstance(value, list):
        return sum(_value_size(item) for item in value)
    if isinstance(value, bool):
        return 4
    if isinstance(value, int | float):
        return 8
    if isinstance(value, str):
        return _text_size(value)
    return 0  # null


def section_size(section: dict[str, Any]) -> int:
    """The size IoT Hub counts for a section (metadata and `$version` excluded).

    As IoT Hub documents it: per property, the UTF-8 length of its key plus the size of its
    value; strings count their UTF-8 bytes without control characters, numbers 8 bytes,
    booleans 4, and objects (and arrays) the sum of what they hold.
    """
    return sum(len(key.encode()) + _value_size(value) for key, value in section.items())


def validate_patch(section: str, patch: Any, *, path: str | None = None) -> None:
    """Check a patch's shape, keys, depth and values.

    Raises:
        BadRequest: naming the offending property path and the rule it breaks.
    """
    where = path or ("tags" if section == "tags" else f"properties.{section}")
    if not isinstance(patch, dict):
        raise errors.BadRequest(f"{where} must be a JSON object, not {type(patch).__name__}.")
    _validate_object(patch, where, 0)


def _validate_object(obj: dict[str, Any], where: str, depth: int) -> None:
    # The section itself is depth 0: {"one": {... {"ten": {"property": "value"}}}} is valid.
    if depth > DEPTH_LIMIT:
        raise errors.BadRequest(
            f"{where} nests arrays and objects {depth} deep; IoT Hub allows at most {DEPTH_LIMIT}.",
            error_code="400027",
        )
    for key, value in obj.items():
        here = f"{where}.{key}"
        if not key or len(key.encode()) > _KEY_LIMIT:
            raise errors.BadRequest(f"Property names must have 1 to {_KEY_LIMIT} bytes: {here!r}.")
        bad = [c for c in _FORBIDDEN_IN_KEYS if c in key]
        if bad or _CONTROL.search(key):
            what = f"{bad[0]!r}" if bad else "a control character"
            raise errors.BadRequest(f"Property name {key!r} in {where} may not contain {what}.")
        _validate_value(value, here, depth)


def _validate_value(value: Any, where: str, depth: int) -> None:
    if isinstance(value, dict):
        _validate_object(value, where, depth + 1)
    elif isinstance(value, list):
        # An array is a level too: a section of nested arrays is as deep as nested objects.
        if depth + 1 > DEPTH_LIMIT:
            raise errors.BadRequest(
                f"{where} nests arrays and objects {depth + 1} deep; IoT Hub allows at most "
                f"{DEPTH_LIMIT}.",
                error_code="400027",
            )
        for i, item in enumerate(value):
            _validate_value(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        if len(value.encode()) > _STRING_LIMIT:
            raise errors.BadRequest(
                f"{where} is a string of more than {_STRING_LIMIT} bytes.", error_code="400027"
            )
    elif isinstance(value, float) and (value != value or value in (math.inf, -math.inf)):
        raise errors.BadRequest(f"{where} is not a JSON number.")
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = INTEGER_RANGE
        if not low <= value <= high:
            raise errors.BadRequest(
                f"{where} is an integer outside IoT Hub's range {low} to {high}."
            )


def apply_patch(
    section: dict[str, Any],
    metadata: dict[str, Any],
    patch: dict[str, Any],
    *,
    now: str,
    version: int | None,
    limit: int | None,
    name: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The section and metadata after `patch` (the inputs are left untouched).

    Only the objects on the patch's paths are copied; the new section shares every subtree the
    patch does not touch with the old one (twin sections are never changed in place), so a small
    patch to a large twin costs the patch, not the twin.

    Args:
        section: the current properties, without `$` keys.
        metadata: the current `$metadata` for them.
        patch: a validated merge patch.
        now: the ISO-8601 time to stamp changed properties with.
        version: the section version after the patch, recorded as `$lastUpdatedVersion`
            (desired only); None to record no version.
        limit: the section's size limit in bytes, if any.
        name: the section's name for error messages.

    Raises:
        BadRequest: the patched section would be larger than `limit`.
    """
    new_section, new_meta = _merged(section, metadata, patch, _stamp(now, version))
    if limit is not None and (size := section_size(new_section)) > limit:
        raise errors.BadRequest(
            f"The {name} section would be {size} bytes; IoT Hub allows at most {limit}.",
            error_code="400027",
        )
    return new_section, new_meta


def _stamp(now: str, version: int | None) -> dict[str, Any]:
    stamp: dict[str, Any] = {"$lastUpdated": now}
    if version is not None:
        stamp["$lastUpdatedVersion"] = version
    return stamp


def _merged(
    target: dict[str, Any], meta: dict[str, Any], patch: dict[str, Any], stamp: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    target, meta = dict(target), dict(meta)
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict):
            child, child_meta = target.get(key), meta.get(key)
            if not isinstance(child, dict):
                child, child_meta = {}, {}
            target[key], meta[key] = _merged(
                child, child_meta if isinstance(child_meta, dict) else {}, value, stamp
            )
        else:
            target[key] = copy.deepcopy(value)
            meta[key] = dict(stamp)
    meta.update(stamp)
    return target, meta


def diff_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (nulls for removed keys)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = diff_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value or type(before) is not type(value):
            patch[key] = copy.deepcopy(value)
    return patch
