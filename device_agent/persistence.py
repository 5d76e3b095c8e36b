"""Durable agent state: JSON files replaced atomically (write, fsync, rename, fsync the folder).

After a power cut a reader sees the previous file or the new one, never a torn mix, so the agent
always knows the last step it had committed to before the lights went out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["StateFile"]


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
