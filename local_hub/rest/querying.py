"""Twin and job queries: `POST /devices/query`, paged with IoT Hub's headers.

The continuation token is the offset of the next row, opaque to clients. Each page re-runs the
query over the current twins, as IoT Hub's pages reflect the store when they are read.
"""

from __future__ import annotations

import base64
import binascii
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
_TOKEN_LIMITS = jsonlimits.Limits(max_bytes=256, max_depth=2, max_number_chars=20)
_NOT_OURS = "The continuation token is not one this hub issued."


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if len(token) > 512 or not token.isascii():
        raise errors.BadRequest(_NOT_OURS)
    try:
        document = jsonlimits.loads(base64.urlsafe_b64decode(token.encode()), _TOKEN_LIMITS)
    except (binascii.Error, ValueError):  # JSONRefused is a ValueError
        raise errors.BadRequest(_NOT_OURS) from None
    offset = document.get("o") if isinstance(document, dict) else None
    if type(offset) is not int or offset < 0:
        raise errors.BadRequest(_NOT_OURS)
    return offset


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
    page = _page_size(request.headers.get("x-ms-max-item-count"))
    offset = _offset(request.headers.get("x-ms-continuation"))
    try:
        parsed = queries.parse(body["query"], strict=True)  # what IoT Hub accepts, no more
    except queries.QueryError as exc:
        raise errors.BadRequest(f"The query is invalid. {exc}", error_code="400020") from None
    if parsed.source == "devices.jobs":
        documents: Iterable[dict[str, Any]] = ctx.jobs.device_job_rows() if ctx.jobs else []
        item_type = "deviceJob"
    else:
        documents = ctx.registry.twins()
        item_type = "raw" if parsed.select.projections else "twin"
    rows = parsed.run(documents)
    headers = {"x-ms-item-type": item_type}
    if offset + page < len(rows):
        headers["x-ms-continuation"] = _token(offset + page)
    return json_response(rows[offset : offset + page], headers=headers)
