"""Secondary indexes over twins: which devices hold a given value at a given property path.

The index covers the paths queries select devices by: `deviceId`, and every property under
`tags`, `properties.desired` and `properties.reported` (not `$metadata` or `$version`). For each
such path it maps a value to the devices whose twin holds exactly that value there. It is kept in
memory beside the twins and updated on every write that changes them, so it is always the twins'
exact image; rebuilding it on start costs one pass over the twins already being loaded.

**Values are keyed by the query language's types**, because that is what `=` compares: a key is
the pair (type, value) with the types string, number, boolean and null. `tags.x = '5'` therefore
never finds a twin whose `tags.x` is the number 5, `= 1` never finds `true`, and `= 5` finds both
5 and 5.0 (one number). Only primitive values are indexed: an object or array never equals
anything, and a path a twin lacks (*undefined*) has no entry at all, which is exactly the set of
twins for which `path = value` cannot be true. A covered path with no entry for a value is
therefore a proof that no twin holds it, not a gap in the index.

The planner (`planning.py`) reads it to narrow a query's candidates; the query evaluator still
decides which of them match, so the index never changes a result, only how many twins are read.

A posting for a value held by one device (time stamps, serial numbers) is that device's id, not a
set of one: a set costs about ten times the memory, and unique values are common in twins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["PREFIXES", "Key", "TwinIndex", "covers", "key_of"]

Key = tuple[str, Any]
Path = tuple[str, ...]
# The indexed families: each property anywhere below one of these prefixes.
PREFIXES: tuple[Path, ...] = (("tags",), ("properties", "desired"), ("properties", "reported"))
_DEVICE_ID: Path = ("deviceId",)
_KINDS: dict[type, str] = {str: "s", int: "n", float: "n", bool: "b", type(None): "z"}


def key_of(value: Any) -> Key | None:
    """The index key of a value (None for an object, array or anything `=` never matches)."""
    kind = _KINDS.get(type(value))
    return None if kind is None else (kind, value)


def covers(path: Path) -> bool:
    """True when the index holds every primitive value twins have at `path`."""
    if path == _DEVICE_ID:
        return True
    for prefix in PREFIXES:
        if len(path) > len(prefix) and path[: len(prefix)] == prefix:
            return not any(part.startswith("$") for part in path[len(prefix) :])
    return False


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Key]]:
    if type(value) is dict:
        for name, item in value.items():
            yield from _leaves(item, (*path, name))
    else:
        key = key_of(value)
        if key is not None:
            yield path, key


def _section_leaves(section: Mapping[str, Any], prefix: Path, names: Iterable[str]
                    ) -> dict[Path, Key]:  # fmt: skip
    leaves: dict[Path, Key] = {}
    for name in names:
        if name in section and not name.startswith("$"):
            leaves.update(_leaves(section[name], (*prefix, name)))
    return leaves


class TwinIndex:
    """Path → value → devices, for the covered paths. Not thread-safe: the hub's loop owns it."""

    def __init__(self) -> None:
        self._paths: dict[Path, dict[Key, str | set[str]]] = {}

    def __len__(self) -> int:
        """The number of indexed (path, value) pairs."""
        return sum(len(values) for values in self._paths.values())

    def lookup(self, path: Path, value: Any) -> set[str]:
        """The devices whose twin holds `value` (by the query language's `=`) at a covered
        `path`; a new set the caller may keep."""
        key = key_of(value)
        if key is None:
            return set()
        posting = self._paths.get(path, {}).get(key)
        if posting is None:
            return set()
        return {posting} if isinstance(posting, str) else set(posting)

    def add_device(self, device_id: str, twin: Mapping[str, Any]) -> None:
        """Index a new twin (its id and whole sections)."""
        self._add(_DEVICE_ID, ("s", device_id), device_id)
        for path, key in self._twin_leaves(twin).items():
            self._add(path, key, device_id)

    def remove_device(self, device_id: str, twin: Mapping[str, Any]) -> None:
        """Forget a deleted twin."""
        self._remove(_DEVICE_ID, ("s", device_id), device_id)
        for path, key in self._twin_leaves(twin).items():
            self._remove(path, key, device_id)

    def update_section(self, device_id: str, prefix: Path, old: Mapping[str, Any],
                       new: Mapping[str, Any], names: Iterable[str] | None = None
                       ) -> None:  # fmt: skip
        """Re-index one section of a twin after a write.

        Args:
            device_id: the twin's device.
            prefix: the section's path in query documents, one of `PREFIXES`.
            old: the section before the write.
            new: the section after it.
            names: the top-level properties the write touched (a merge patch's keys); None
                for all of them.
        """
        touched = set(old) | set(new) if names is None else set(names)
        before = _section_leaves(old, prefix, touched)
        after = _section_leaves(new, prefix, touched)
        for path, key in before.items():
            if after.get(path) != key:
                self._remove(path, key, device_id)
        for path, key in after.items():
            if before.get(path) != key:
                self._add(path, key, device_id)

    @staticmethod
    def _twin_leaves(twin: Mapping[str, Any]) -> dict[Path, Key]:
        leaves: dict[Path, Key] = {}
        for prefix, section in zip(PREFIXES, ("tags", "desired", "reported"), strict=True):
            leaves.update(_section_leaves(twin[section], prefix, twin[section]))
        return leaves

    def _add(self, path: Path, key: Key, device_id: str) -> None:
        values = self._paths.get(path)
        if values is None:
            values = self._paths[path] = {}
        posting = values.get(key)
        if posting is None:
            values[key] = device_id
        elif isinstance(posting, str):
            if posting != device_id:
                values[key] = {posting, device_id}
        else:
            posting.add(device_id)

    def _remove(self, path: Path, key: Key, device_id: str) -> None:
        values = self._paths.get(path)
        if values is None:
            return
        posting = values.get(key)
        if posting is None:
            return
        if isinstance(posting, str):
            if posting == device_id:
                del values[key]
        else:
            posting.discard(device_id)
            if len(posting) == 1:
                values[key] = next(iter(posting))
        if not values:
            del self._paths[path]
