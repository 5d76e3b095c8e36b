"""Twin patch semantics, shared by device and back end.

A twin PATCH merges: objects key by key, any other value replaces, and `null` removes a key. So
a section cannot be *replaced* by sending the new one alone: keys it no longer has would stay.
`replacement` is the patch that turns one section into another (what it no longer has, `null`);
`applied` is what a section becomes under a patch, as the hub computes it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["applied", "replacement"]


def replacement(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The patch that turns `current` into `new`: `new`, with `None` for every key (at any depth
    of nested objects) that `current` has and `new` does not."""
    patch: dict[str, Any] = {key: None for key in current if key not in new}
    for key, value in new.items():
        before = current.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = replacement(before, value)
        else:
            patch[key] = value
    return patch


def applied(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`document` after `patch`: nested objects merge, `None` removes the key."""
    out = dict(document)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            before = out.get(key)
            out[key] = applied(before if isinstance(before, dict) else {}, value)
        else:
            out[key] = value
    return out
