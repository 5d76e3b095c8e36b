"""Durable file writes (write a temporary file, fsync it, rename it over the target), and the
owner key pairs kept that way."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

__all__ = ["owner_keys", "write_atomic"]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never a part."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def owner_keys(path: Path) -> list[bytes]:
    """The primary and secondary owner keys kept in `path` (0600), made the first time."""
    if not path.exists():
        keys = {
            "primaryKey": base64.b64encode(secrets.token_bytes(32)).decode(),
            "secondaryKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        write_atomic(path, json.dumps(keys).encode(), mode=0o600)
    data = json.loads(path.read_text())
    return [base64.b64decode(data["primaryKey"]), base64.b64decode(data["secondaryKey"])]
