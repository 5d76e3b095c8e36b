"""The provisioning service's service REST API (HTTPS): enrollments, enrollment groups and
registration states in DPS's shapes, for the `provisioningserviceowner` policy.

    PUT/GET/DELETE  /enrollments/{registrationId}
    POST            /enrollments/query
    PUT/GET/DELETE  /enrollmentGroups/{enrollmentGroupId}
    POST            /enrollmentGroups/query
    GET/DELETE      /registrations/{registrationId}

Every request carries a SAS token signed with the policy's key (`skn=provisioningserviceowner`,
`sr` = the service's host name as the connection string gives it) and an `api-version`. PUT
creates (a symmetric-key attestation whose keys may be left out: they are made) or replaces, in
one write, an existing document, keeping its keys unless new ones are given. Errors come back as
DPS's JSON error bodies (`errorCode`, `trackingId`, `message`, `timestampUtc`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from local_hub import errors, tokens
from local_hub.clock import iso
from local_hub.provisioning.enrollments import EnrollmentError, Enrollments
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["make_service_app"]

OWNER_POLICY = "provisioningserviceowner"
_CONTEXT: web.AppKey[_Context] = web.AppKey("dps-context")
_CODES = {400: 400004, 401: 401002, 404: 404201, 409: 409201}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Context:
    def __init__(self, store: ProvisioningStore, keys: list[bytes], clock: Any) -> None:
        self.enrollments = Enrollments(store)
        self.store = store
        self.keys = keys
        self.clock = clock
        self.host_name = ""


def _error(status: int, message: str, now: float) -> web.Response:
    body = {
        "errorCode": _CODES.get(status, status * 1000 + 1),
        "trackingId": secrets.token_hex(16),
        "message": message,
        "timestampUtc": iso(now),
    }
    return web.json_response(body, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[_CONTEXT]
    try:
        header = request.headers.get("Authorization")
        if not header:
            raise errors.Unauthorized("The request has no Authorization header with a SAS token.")
        tokens.verify_sas_token(
            header, resource=ctx.host_name, keys=ctx.keys, now=ctx.clock(), key_name=OWNER_POLICY
        )
        if "api-version" not in request.query:
            return _error(400, "The request has no api-version query parameter.", ctx.clock())
        return await handler(request)
    except errors.Unauthorized as exc:
        return _error(401, exc.message, ctx.clock())
    except EnrollmentError as exc:
        return _error(exc.status, str(exc), ctx.clock())


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        raise EnrollmentError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise EnrollmentError("The request body must be a JSON object.")
    return body


def _keys(body: dict[str, Any], existing: dict[str, Any] | None) -> tuple[str | None, str | None]:
    attestation = body.get("attestation") or {}
    if (
        not isinstance(attestation, dict)
        or attestation.get("type", "symmetricKey") != "symmetricKey"
    ):
        raise EnrollmentError("Only symmetricKey attestation is supported.")
    pair = attestation.get("symmetricKey") or {}
    old = (existing or {}).get("attestation", {}).get("symmetricKey", {})
    if not isinstance(pair, dict):
        raise EnrollmentError("attestation.symmetricKey must be a JSON object.")
    return pair.get("primaryKey") or old.get("primaryKey"), pair.get("secondaryKey") or old.get(
        "secondaryKey"
    )


def _options(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("provisioningStatus", "enabled")
    if status not in ("enabled", "disabled"):
        raise EnrollmentError("provisioningStatus must be enabled or disabled.")
    hubs = body.get("iotHubs") or []
    if not isinstance(hubs, list) or not all(isinstance(h, str) for h in hubs):
        raise EnrollmentError("iotHubs must be a list of hub host names.")
    return {
        "allocation": body.get("allocationPolicy", "hashed"),
        "iot_hubs": hubs,
        "initial_twin": body.get("initialTwin"),
        "enabled": status == "enabled",
        "reprovision": body.get("reprovisionPolicy"),
    }


routes = web.RouteTableDef()


@routes.put("/enrollments/{id}")
async def put_enrollment(request: web.Request) -> web.Response:
    ctx = request.app[_CONTEXT]
    registration_id = request.match_info["id"]
    body = await _body(request)
    if body.get("registrationId", registration_id) != registration_id:
        raise EnrollmentError("The registrationId in the body differs from the one in the path.")
    existing = ctx.store.get("enrollments", registration_id)
    primary, secondary = _keys(body, existing)
    options = _options(body)
    doc = ctx.enrollments.create(
        registration_id, device_id=body.get("deviceId"), primary_key=primary,
        secondary_key=secondary, replace=True, **options,
    )  # fmt: skip
    return web.json_response(doc)


@routes.put("/enrollmentGroups/{id}")
async def put_group(request: web.Request) -> web.Response:
    ctx = request.app[_CONTEXT]
    group_id = request.match_info["id"]
    body = await _body(request)
    if body.get("enrollmentGroupId", group_id) != group_id:
        raise EnrollmentError("The enrollmentGroupId in the body differs from the one in the path.")
    existing = ctx.store.get("enrollment_groups", group_id)
    primary, secondary = _keys(body, existing)
    options = _options(body)
    doc = ctx.enrollments.create_group(
        group_id, primary_key=primary, secondary_key=secondary, replace=True, **options
    )
    return web.json_response(doc)


@routes.get("/enrollments/{id}")
async def get_enrollment(request: web.Request) -> web.Response:
    return web.json_response(request.app[_CONTEXT].enrollments.enrollment(request.match_info["id"]))


@routes.get("/enrollmentGroups/{id}")
async def get_group(request: web.Request) -> web.Response:
    return web.json_response(request.app[_CONTEXT].enrollments.group(request.match_info["id"]))


@routes.delete("/enrollments/{id}")
async def delete_enrollment(request: web.Request) -> web.Response:
    request.app[_CONTEXT].enrollments.delete(request.match_info["id"])
    return web.Response(status=204)


@routes.delete("/enrollmentGroups/{id}")
async def delete_group(request: web.Request) -> web.Response:
    request.app[_CONTEXT].enrollments.delete_group(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/enrollments/query")
async def query_enrollments(request: web.Request) -> web.Response:
    return web.json_response(request.app[_CONTEXT].enrollments.enrollments())


@routes.post("/enrollmentGroups/query")
async def query_groups(request: web.Request) -> web.Response:
    return web.json_response(request.app[_CONTEXT].enrollments.groups())


@routes.get("/registrations/{id}")
async def get_registration(request: web.Request) -> web.Response:
    doc = request.app[_CONTEXT].store.get("registrations", request.match_info["id"])
    if doc is None:
        raise EnrollmentError("There is no such registration.", 404)
    return web.json_response(doc)


@routes.delete("/registrations/{id}")
async def delete_registration(request: web.Request) -> web.Response:
    if not request.app[_CONTEXT].store.delete("registrations", request.match_info["id"]):
        raise EnrollmentError("There is no such registration.", 404)
    return web.Response(status=204)


def make_service_app(
    store: ProvisioningStore, keys: list[bytes], clock: Any
) -> tuple[web.Application, Callable[[str], None]]:
    """The service API's application, and a setter for the host name tokens must name (known
    once the port is)."""
    context = _Context(store, keys, clock)
    app = web.Application(middlewares=[_guard], client_max_size=256 * 1024)
    app[_CONTEXT] = context
    app.add_routes(routes)

    def set_host_name(host_name: str) -> None:
        context.host_name = host_name

    return app, set_host_name
