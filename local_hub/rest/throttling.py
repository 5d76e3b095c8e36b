"""The REST side of the hub's quotas: which throttle each request draws on, and `GET /quotas`.

The middleware runs after authentication, so an unsigned request costs nothing. A request over
its throttle is refused as IoT Hub refuses it: 429, `iothub-errorcode: ThrottlingException`, error
code 429001 in the body, and a `Retry-After` (seconds until it would be queued rather than
refused). Requests within the shaping queue are answered late, not refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

import jsonlimits
from local_hub import quotas
from local_hub.rest.context import BODY_LIMITS, json_response, of

__all__ = ["middleware", "routes", "throttle_of"]

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/devices/query$"), "queries"),
    ("POST", re.compile(r"^/twins/[^/]+/methods$"), "directMethods"),
    ("GET", re.compile(r"^/twins/[^/]+$"), "twinReads"),
    ("PATCH", re.compile(r"^/twins/[^/]+$"), "twinUpdates"),
    ("PUT", re.compile(r"^/twins/[^/]+$"), "twinUpdates"),
    ("*", re.compile(r"^/devices(/[^/]+)?$"), "identityRegistryOperations"),
    ("*", re.compile(r"^/jobs/v2(/.*)?$"), "jobsOperations"),
    ("*", re.compile(r"^/configurations(/.*)?$"), "configurations"),
)


def throttle_of(method: str, path: str) -> str | None:
    """The throttle a request draws on, or None (statistics, artifacts, /quotas)."""
    for rule_method, pattern, throttle in _RULES:
        if rule_method in ("*", method) and pattern.match(path):
            return throttle
    return None


async def _cost(request: web.Request, throttle: str) -> float:
    if throttle not in ("directMethods", "identityRegistryOperations") or request.method != "POST":
        return 1.0
    try:
        raw = await request.read()  # cached: the handler reads it again
    except web.HTTPRequestEntityTooLarge:
        return 1.0  # the handler refuses it with IoT Hub's error
    if throttle == "directMethods":  # metered per 4 KB of payload
        return float(max(1, math.ceil(len(raw) / quotas.METHOD_METER)))
    try:  # a bulk registry call costs one per device
        body = jsonlimits.loads(raw, BODY_LIMITS)
    except jsonlimits.JSONRefused:
        return 1.0  # the handler refuses it, naming why
    return float(max(1, len(body))) if isinstance(body, list) else 1.0


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limits = of(request).quotas
    if limits is not None and (throttle := throttle_of(request.method, request.path)):
        await limits.admit(throttle, await _cost(request, throttle))
    return await handler(request)


@routes.get("/quotas")
async def view(request: web.Request) -> web.Response:
    limits = of(request).quotas
    if limits is None:
        return json_response({"tier": None, "units": None, "throttles": {}})
    return json_response(limits.view())
