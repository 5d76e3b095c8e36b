"""Twin and job queries: `POST /devices/query`, paged with IoT Hub's headers.

Twin queries that return twins or projections page by **cursor**: twins are read in device-id
order and the continuation token holds the last device id returned, so each page scans only from
there (reading a whole fleet in pages costs about one scan), and a twin present for the whole read
is returned exactly once however twins are added, removed or changed between pages. Aggregates
and `devices.jobs` page by offset over their (small) result.

**Devices never wait behind a query.** Everything a query does on the event loop (reading twins,
matching a page, encoding the response a row at a time) runs in time slices of `BUDGET` (2 ms)
between which the loop serves whatever is ready; an aggregate's WHERE and grouping run in a
worker thread over the documents gathered on the loop (a changed twin gets a new view, so the
thread's views stay as they were but for their activity time), and the interpreter hands the
loop its turn every few milliseconds while it runs. The thread touches no SQLite connection (job
rows are read on the loop), so the store's connection-per-thread rule and its group-commit
writer are not involved.

Twin queries read only the candidates the planner finds in the twin index (`planning`) when the
WHERE clause gives it a handle (`=`, `IN`, `AND`/`OR` of them on `deviceId`, tags, desired or
reported properties): a query selecting 100 twins of 100,000 reads 100. The query itself still
decides which candidates match.

The token is opaque to clients and tied to its query: a token that this hub did not issue for this
query text is refused with a 400, as IoT Hub refuses a bad continuation token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

import jsonlimits
import queries
from local_hub import errors
from local_hub.rest.context import json_body, of, whole_number

__all__ = ["routes"]

routes = web.RouteTableDef()

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TOKEN_LIMITS = jsonlimits.Limits(max_bytes=768, max_depth=2, max_number_chars=20)


BUDGET = 0.002  # seconds of query work between two yields to the event loop
_RUN_CHUNK = 50  # matched twins projected between two looks at the clock
_BAD_TOKEN = "The continuation token is not one this hub issued for this query."


def _query_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token(query: str, **position: Any) -> str:
    body = {"h": _query_hash(query), **position}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def _position(token: str | None, query: str) -> dict[str, Any]:
    """The decoded token: {} for the first page; {"a": last id, "n": rows so far} for a cursor;
    {"o": offset} for an offset page.

    Raises:
        BadRequest: garbage, a token for another query, or fields of the wrong type.
    """
    if not token:
        return {}
    if len(token) > 1024 or not token.isascii():
        raise errors.BadRequest(_BAD_TOKEN)
    try:
        body = jsonlimits.loads(base64.urlsafe_b64decode(token.encode()), _TOKEN_LIMITS)
    except (binascii.Error, ValueError):  # JSONRefused is a ValueError
        raise errors.BadRequest(_BAD_TOKEN) from None
    if not isinstance(body, dict) or body.get("h") != _query_hash(query):
        raise errors.BadRequest(_BAD_TOKEN)
    if set(body) == {"h", "a", "n"}:
        after, count = body["a"], body["n"]
        if isinstance(after, str) and type(count) is int and count >= 0:
            return {"a": after, "n": count}
    elif set(body) == {"h", "o"}:
        offset = body["o"]
        if type(offset) is int and offset >= 0:
            return {"o": offset}
    raise errors.BadRequest(_BAD_TOKEN)


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    size = whole_number(text, 1, MAX_PAGE)
    if size is None:
        raise errors.BadRequest(f"x-ms-max-item-count must be a whole number from 1 to {MAX_PAGE}.")
    return size


@routes.post("/devices/query")
async def query(request: web.Request) -> web.Response:
    ctx = of(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise errors.BadRequest('The body must be {"query": "<query text>"}.')
    text: str = body["query"]
    page = _page_size(request.headers.get("x-ms-max-item-count"))
    position = _position(request.headers.get("x-ms-continuation"), text)
    try:
        parsed = queries.parse(text, strict=True)  # what IoT Hub accepts, no more
    except queries.QueryError as exc:
        raise errors.BadRequest(f"The query is invalid. {exc}", error_code="400020") from None
    if parsed.source != "devices.jobs" and not parsed.is_aggregate:
        if "o" in position:
            raise errors.BadRequest(_BAD_TOKEN)
        return await _cursor_page(ctx.registry, parsed, text, page, position)
    if "a" in position:
        raise errors.BadRequest(_BAD_TOKEN)
    offset = int(position.get("o", 0))
    if parsed.source == "devices.jobs":
        documents: Iterable[dict[str, Any]] = ctx.jobs.device_job_rows() if ctx.jobs else []
        item_type = "deviceJob"
    else:
        chosen = ctx.registry.candidates(parsed.where)
        documents = ctx.registry.twins() if chosen is None else ctx.registry.twins_of(chosen)
        item_type = "raw"
    slicer = _Slicer()
    gathered = await _gathered(documents, slicer)
    # WHERE, grouping and aggregates over the gathered (read-only) documents, in a worker thread:
    # one call into the aggregator cannot be sliced, and the interpreter's thread switching
    # gives the loop its turn every few milliseconds while it runs.
    rows = await asyncio.to_thread(parsed.run, gathered)
    headers = {"x-ms-item-type": item_type}
    if offset + page < len(rows):
        headers["x-ms-continuation"] = _token(text, o=offset + page)
    return await _response(rows[offset : offset + page], headers, slicer)


class _Slicer:
    """Time slices: `due` once `BUDGET` seconds of work have passed since the last yield."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self._since >= BUDGET

    async def pause(self) -> None:
        """Let the loop serve everything ready (devices first) before going on."""
        await asyncio.sleep(0)
        self._since = time.perf_counter()


async def _gathered(documents: Iterable[dict[str, Any]], slicer: _Slicer) -> list[Any]:
    """The documents as a list, read in time slices (a twin's view may be built on the way)."""
    gathered: list[Any] = []
    for doc in documents:
        gathered.append(doc)
        if slicer.due():
            await slicer.pause()
    return gathered


async def _response(rows: list[Any], headers: dict[str, str], slicer: _Slicer) -> web.Response:
    """The JSON array of `rows`, encoded a row at a time in time slices (a page of 1,000 twins
    is about a megabyte: encoded at once it would hold the loop for several milliseconds)."""
    parts: list[str] = []
    for row in rows:
        parts.append(json.dumps(row))
        if slicer.due():
            await slicer.pause()
    body = ("[" + ", ".join(parts) + "]").encode()
    return web.Response(body=body, content_type="application/json", charset="utf-8",
                        headers=headers)  # fmt: skip


async def _cursor_page(
    hub_registry: Any, parsed: queries.Query, text: str, page: int, position: dict[str, Any]
) -> web.Response:
    returned = int(position.get("n", 0))
    top = parsed.top
    wanted = page if top is None else max(0, min(page, top - returned))
    after: str | None = position.get("a")
    planned = hub_registry.candidates(parsed.where)
    if planned is None:
        ids = hub_registry.ordered_ids()
    else:  # the index narrowed the read to these (the query still decides which match)
        ids = sorted(planned if after is None else (i for i in planned if i > after))
    start = 0 if after is None else bisect.bisect_right(ids, after)
    chosen: list[tuple[str, dict[str, Any]]] = []
    more = False
    index = start
    slicer = _Slicer()
    while index < len(ids) and wanted:
        device_id = ids[index]
        index += 1
        doc = hub_registry.twin_view(device_id)
        if doc is not None and parsed.matches(doc):
            if len(chosen) == wanted:
                more = True
                break
            chosen.append((device_id, doc))
        if slicer.due():
            await slicer.pause()  # devices are served; the registry may change meanwhile
            if planned is None:
                ids = hub_registry.ordered_ids()
                index = bisect.bisect_right(ids, device_id)  # our place in a changed list
    rows: list[Any] = []
    for first in range(0, len(chosen), _RUN_CHUNK):  # projecting 1,000 twins takes a while
        rows += parsed.run(doc for _, doc in chosen[first : first + _RUN_CHUNK])
        if slicer.due():
            await slicer.pause()
    item_type = "raw" if parsed.select.projections else "twin"
    headers = {"x-ms-item-type": item_type}
    if more and chosen and (top is None or returned + len(chosen) < top):
        headers["x-ms-continuation"] = _token(text, a=chosen[-1][0], n=returned + len(chosen))
    return await _response(rows, headers, slicer)
