"""Device secrets on disk: a key file must be readable by its owner only.

A device key in a file that other local users can read is a key they can use to impersonate the
device, so the agent refuses to start rather than warn. The key itself never appears in a message.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from device_agent import errors

__all__ = ["check_private", "is_key", "read_key"]


def _refuse_shared(path: Path, status: os.stat_result, field: str, what: str) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise errors.InvalidSettings(f"{field}: {what} {path} is not a regular file", field=field)
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise errors.InvalidSettings(
            f"{field}: {what} {path} can be read by group or others (mode {mode:04o}); "
            f"run `chmod 600 {path}`",
            field=field,
        )


def _unreadable(path: Path, exc: OSError, field: str, what: str) -> errors.InvalidSettings:
    if isinstance(exc, FileNotFoundError):
        return errors.InvalidSettings(
            f"{field}: {what} {path} does not exist; create it or fix the path", field=field
        )
    return errors.InvalidSettings(
        f"{field}: cannot read {what} {path} ({exc.strerror})", field=field
    )


def is_key(text: str) -> bool:
    """Whether `text` is a base64 symmetric key of at least 16 bytes (as IoT Hub and DPS take)."""
    try:
        return len(base64.b64decode(text, validate=True)) >= 16
    except (binascii.Error, ValueError):
        return False


def check_private(path: Path, field: str, what: str) -> None:
    """Refuse `path` if group or others may read or write it.

    Raises:
        InvalidSettings: the file is missing, not a regular file, or not private.
    """
    try:
        status = path.stat()
    except OSError as exc:
        raise _unreadable(path, exc, field, what) from None
    _refuse_shared(path, status, field, what)


def read_key(path: Path, field: str) -> str:
    """The base64 device key held in `path` (owner-only), stripped of surrounding whitespace.

    The mode is checked on the opened file itself, so a file swapped after the check is not read.

    Raises:
        InvalidSettings: the file is not private, cannot be read, or holds no base64 key.
    """
    what = "the key file"
    try:
        with path.open("rb") as file:
            _refuse_shared(path, os.fstat(file.fileno()), field, what)
            raw = file.read(4096)
    except OSError as exc:
        raise _unreadable(path, exc, field, what) from None
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        key = ""
    if not is_key(key):
        raise errors.InvalidSettings(
            f"{field}: the key file {path} must hold the device's base64 symmetric key (the "
            "primary key from the hub) and nothing else",
            field=field,
        )
    return key
