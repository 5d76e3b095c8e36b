"""Twin and job queries: `POST /devices/query`, paged with IoT Hub's headers.

Twin queries that return twins or projections page by **cursor**: twins are read in device-id
order and the continuation token holds the last device id returned, so each page scans only from
there (reading a whole fleet in pages costs about one scan), and a twin present for the whole read
is returned exactly once however twins are added, removed or changed between pages. Aggregates
and `devices.jobs` page by offset over their (small) result. Either way the scan runs in slices
that yield to the event loop, so devices are served while a large query runs.

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
from collections.abc import Iterable
from typing import Any

from aiohttp import web

import jsonlimits
import queries
from local_hub import errors
from local_hub.rest.context import json_body, json_response, of, whole_number

__all__ = ["routes"]

routes = web.RouteTableDef()

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TOKEN_LIMITS = jsonlimits.Limits(max_bytes=768, max_depth=2, max_number_chars=20)


SLICE = 1000  # twins examined between two yields to the event loop
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
    rows = parsed.run(await _matching(parsed, documents))
    headers = {"x-ms-item-type": item_type}
    if offset + page < len(rows):
        headers["x-ms-continuation"] = _token(text, o=offset + page)
    return json_response(rows[offset : offset + page], headers=headers)


async def _matching(parsed: queries.Query, documents: Iterable[dict[str, Any]]) -> list[Any]:
    """The documents the WHERE clause selects, scanned in slices between loop yields."""
    matched: list[Any] = []
    for scanned, doc in enumerate(documents, 1):
        if parsed.matches(doc):
            matched.append(doc)
        if scanned % SLICE == 0:
            await asyncio.sleep(0)
    return matched


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
    while index < len(ids) and wanted:
        chunk = ids[index : index + SLICE]
        index += len(chunk)
        for device_id in chunk:
            doc = hub_registry.twin_view(device_id)
            if doc is None or not parsed.matches(doc):
                continue
            if len(chosen) == wanted:
                more = True
                break
            chosen.append((device_id, doc))
        if more:
            break
        await asyncio.sleep(0)  # let devices be served; the registry may change meanwhile
        if planned is None:
            ids = hub_registry.ordered_ids()
            index = bisect.bisect_right(ids, chunk[-1])  # our place in a list that changed
    rows = parsed.run(doc for _, doc in chosen)
    item_type = "raw" if parsed.select.projections else "twin"
    headers = {"x-ms-item-type": item_type}
    if more and chosen and (top is None or returned + len(chosen) < top):
        headers["x-ms-continuation"] = _token(text, a=chosen[-1][0], n=returned + len(chosen))
    return json_response(rows, headers=headers)
