"""Durable file writes (write a temporary file, fsync it, rename it over the target), and the
owner key pairs kept that way."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "owner_keys", "write_atomic"]


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write that replaces `path` when the block ends: a reader sees the old file or
    the new one, never a part, even after a power cut. If the block raises, `path` is untouched.

    The temporary file's name is unique, so concurrent writers of one path never share it (the
    last to finish wins, whole).
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # the umask may have narrowed it
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never a part."""
    with atomic_writer(path, mode=mode) as out:
        out.write(data)


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
