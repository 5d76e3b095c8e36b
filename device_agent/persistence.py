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
    """One JSON document on disk.

    Args:
        path: the file.
        mode: the file's permissions (less the umask). A file holding a secret (0o600) has
            them from its first byte: the temporary file is created with them, not chmod-ed.
    """

    def __init__(self, path: Path, *, mode: int = 0o666) -> None:
        self.path = path
        self.mode = mode

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
        temporary.unlink(missing_ok=True)  # one left by a power cut may have other permissions
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        with os.fdopen(descriptor, "w") as out:
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
