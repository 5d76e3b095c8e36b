"""The vendored scripts and the stylesheet, read once at start and served from memory.

Serving from memory keeps file I/O (and its executor threads) off the request path, and lets
every asset carry a strong ETag: browsers revalidate with a 304 and never fetch from elsewhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

__all__ = ["STATIC", "Assets"]

STATIC = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain", ".md": "text/plain"}


class Assets:
    """Every file under `static/`, by its path below it."""

    def __init__(self, root: Path = STATIC) -> None:
        self._files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in _TYPES:
                body = path.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                self._files[path.relative_to(root).as_posix()] = (body, _TYPES[path.suffix], etag)

    async def handle(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="No such asset.")
        body, content_type, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)
