"""What every REST handler needs: the registry, the device endpoint, keys and the clock."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

import jsonlimits
from local_hub import configurations, errors, import_export, jobs, quotas, registry
from local_hub.clock import Clock
from local_hub.mqtt import DeviceEndpoint
from local_hub.refusals import RefusalLog

__all__ = [
    "BODY_LIMITS",
    "CONTEXT",
    "ServiceContext",
    "json_body",
    "json_response",
    "of",
    "refuse_json",
    "whole_number",
]

log = logging.getLogger(__name__)

# The service endpoint reads bodies of up to 1 MB; a twin patch is about 13 levels deep at most,
# so 64 levels leave room for method payloads and configurations while bounding the parser.
BODY_LIMITS = jsonlimits.Limits(max_bytes=1024 * 1024, max_depth=64, max_number_chars=100)


@dataclass
class ServiceContext:
    """The hub as the REST handlers see it."""

    registry: registry.Registry
    endpoint: DeviceEndpoint
    host_name: str
    owner_keys: list[bytes]
    artifacts_dir: Path
    clock: Clock
    jobs: jobs.JobRunner | None = None
    import_export: import_export.ImportExportJobs | None = None
    configurations: configurations.ConfigurationManager | None = None
    refusals: RefusalLog = field(default_factory=lambda: RefusalLog(log))
    body_timeout: float = 30.0
    quotas: quotas.Quotas | None = None


CONTEXT = web.AppKey("twinfleet-context", ServiceContext)


def of(request: web.Request) -> ServiceContext:
    return request.app[CONTEXT]


async def json_body(request: web.Request) -> Any:
    """The request's JSON body.

    Raises:
        BadRequest: the body is empty, too large or not JSON.
        RequestTimeout: the body did not arrive within the context's `body_timeout`.
    """
    timeout = of(request).body_timeout
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.BadRequest("The request body is too large.", error_code="413001") from None
    except TimeoutError:
        of(request).refusals.refused(
            f"client {request.remote}", f"{request.method} {request.path}", "a body too slow"
        )
        raise errors.RequestTimeout(
            f"The request body did not arrive within {timeout:g} s; send it at once."
        ) from None
    try:
        return jsonlimits.loads(raw, BODY_LIMITS)
    except jsonlimits.JSONRefused as exc:
        raise refuse_json(request, "the request body", exc) from None


def whole_number(text: str, low: int, high: int) -> int | None:
    """`text` as an int from `low` to `high`, or None (ASCII digits only, so `int` cannot fail)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    value = int(text)
    return value if low <= value <= high else None


def refuse_json(request: web.Request, what: str, exc: jsonlimits.JSONRefused) -> errors.BadRequest:
    """Log (rate-limited per client) and name a refused JSON input: the 400 to raise."""
    of(request).refusals.refused(
        f"client {request.remote}", f"{what} of {request.method} {request.path}", exc.reason
    )
    return errors.BadRequest(f"{what[0].upper()}{what[1:]} was refused: {exc.reason}.")


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )
