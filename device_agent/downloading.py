"""Firmware downloads: streamed to disk in fixed chunks, hashed while written, resumed with HTTP
Range after an interruption, over http, https (trusting a given CA file) and file URLs.

Memory stays constant whatever the image size. A resumed download first re-hashes the bytes
already on disk, so the digest always covers the whole file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from device_agent import errors

__all__ = ["CHUNK", "download"]

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
Progress = Callable[[int, int | None], None]


def _hash_existing(path: Path) -> tuple[int, hashlib._Hash]:
    digest = hashlib.sha256()
    size = 0
    if path.exists():
        with path.open("rb") as existing:
            while chunk := existing.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return size, digest


def download(
    url: str,
    target: Path,
    *,
    max_size: int,
    ca_file: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> str:
    """Download `url` into `target` (resuming a partial `target`); returns the SHA-256 hex digest.

    Raises:
        PermanentError: the image is larger than `max_size`, the URL is unusable, the server says
            it does not exist (4xx), or the disk is full.
        TemporaryError: the network or the server failed (the partial file is kept to resume).
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise errors.PermanentError(f"unsupported URL scheme {scheme!r} (use http, https or file)")
    target.parent.mkdir(parents=True, exist_ok=True)
    have, digest = _hash_existing(target)
    request = urllib.request.Request(url)
    if have and scheme != "file":
        request.add_header("Range", f"bytes={have}-")
    context = ssl.create_default_context(cafile=ca_file) if scheme == "https" else None
    try:
        response = urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already whole
            return digest.hexdigest()
        kind = errors.PermanentError if 400 <= exc.code < 500 else errors.TemporaryError
        raise kind(f"download failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        if scheme == "file":
            raise errors.PermanentError(f"download failed: {exc}") from None
        raise errors.TemporaryError(f"download failed: {exc}") from None
    with response:
        status = getattr(response, "status", 200)
        if have and status != 206:
            have, digest = 0, hashlib.sha256()  # the server sent the whole file again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if total is not None and total > max_size:
            raise errors.PermanentError(
                f"image is {total} bytes, over the limit of {max_size} bytes"
            )
        mode = "ab" if have else "wb"
        written = have
        last_reported = -1
        try:
            with target.open(mode) as out:
                while chunk := response.read(CHUNK):
                    written += len(chunk)
                    if written > max_size:
                        raise errors.PermanentError(f"image is over the limit of {max_size} bytes")
                    out.write(chunk)
                    digest.update(chunk)
                    if progress is not None and total:
                        tenth = written * 10 // total
                        if tenth != last_reported:
                            last_reported = tenth
                            progress(written, total)
                out.flush()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                target.unlink(missing_ok=True)
                raise errors.PermanentError("disk full while downloading the image") from None
            raise errors.TemporaryError(f"download interrupted: {exc}") from None
        if total is not None and written < total:
            raise errors.TemporaryError(f"download interrupted at {written} of {total} bytes")
    log.info("downloaded %d bytes", written)
    return digest.hexdigest()
