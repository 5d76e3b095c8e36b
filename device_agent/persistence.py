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


def write_json(path: Path, data: Any, *, mode: int = 0o666) -> None:
    """Replace `path` with `data` as JSON: write a temporary file, fsync it, rename it over
    `path`, fsync the folder. A reader sees the old document or the new one, never a part.

    The file has `mode` (less the umask) from its first byte: the temporary file is created
    with it, not chmod-ed, so a secret (0o600) is never readable by others, even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # one left by a power cut may have other permissions
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as out:
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
        write_json(self.path, data, mode=self.mode)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
