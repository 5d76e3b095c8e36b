"""Durable agent state: JSON files replaced atomically (write, fsync, rename, fsync the folder).

After a power cut a reader sees the previous file or the new one, never a torn mix, so the agent
always knows the last step it had committed to before the lights went out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["StateFile", "write_json"]


def write_json(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON: write a temporary file, fsync it, rename it over
    `path`, fsync the folder. A reader sees the old document or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class StateFile:
    """One JSON document on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """The saved document, or {} when none was ever saved."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return dict(data)

    def save(self, data: dict[str, Any]) -> None:
        """Replace the document durably."""
        write_json(self.path, data)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
