"""`/devices/<id>`: one device's twin, connection, campaigns; a direct method (confirmed first);
desired properties edited as JSON under the twin's etag, so a concurrent change is a conflict
shown to the operator, never overwritten."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from twin_manager import (
    DeviceNotFound,
    DeviceNotOnline,
    HubError,
    MethodTimeout,
    PreconditionFailed,
)
from twinfleet.dashboard.context import DASHBOARD, Dashboard

__all__ = ["device", "edit_desired", "invoke", "merge_patch"]

MAX_JSON = 32 * 1024


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `old` into `new` (a removed key becomes null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(before, dict) and isinstance(value, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    return patch


def _json_object(text: str, what: str) -> dict[str, Any]:
    if len(text) > MAX_JSON:
        raise ValueError(f"{what} is longer than {MAX_JSON // 1024} KB")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


async def _render(
    request: web.Request, dash: Dashboard, *, status: int = 200, **values: Any
) -> web.Response:
    device_id = request.match_info["device_id"]
    try:
        twin = await dash.run(dash.access.twin, device_id)
    except DeviceNotFound:
        return dash.page(
            request,
            "error.html",
            status=404,
            title="No such device",
            message=f"No device {device_id!r} on this hub.",
        )
    defaults: dict[str, Any] = {
        "method_result": None,
        "method_error": None,
        "edit_error": None,
        "conflict": False,
        "edited": None,
        "notice": request.query.get("notice"),
    }
    return dash.page(
        request,
        "device.html",
        status=status,
        title=f"Device {device_id}",
        twin=twin,
        campaigns=dash.access.device_campaigns(twin),
        **{**defaults, **values},
    )


async def device(request: web.Request) -> web.Response:
    return await _render(request, request.app[DASHBOARD])


async def invoke(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    device_id = request.match_info["device_id"]
    form = await request.post()
    method = str(form.get("method", "")).strip()
    payload_text = str(form.get("payload", "")).strip()
    try:
        if not method or len(method) > 128:
            raise ValueError("name the method (up to 128 characters)")
        if len(payload_text) > MAX_JSON:
            raise ValueError(f"the payload is longer than {MAX_JSON // 1024} KB")
        payload = json.loads(payload_text) if payload_text else None
    except RecursionError:
        return await _render(
            request, dash, status=400, method_error="Not invoked: the payload is nested too deeply"
        )
    except ValueError as exc:
        return await _render(request, dash, status=400, method_error=f"Not invoked: {exc}")
    if form.get("confirmed") != "yes":
        return dash.page(
            request,
            "confirm.html",
            title="Confirm",
            question=f"Invoke {method!r} on device {device_id!r}?",
            action=request.rel_url.raw_path,
            back=f"/devices/{quote(device_id, safe='')}",
            fields={"method": method, "payload": payload_text},
        )
    try:
        result = await dash.run(
            dash.access.invoke, device_id, method, payload, dash.settings.method_timeout
        )
    except (DeviceNotOnline, MethodTimeout, HubError) as exc:
        return await _render(request, dash, status=502, method_error=str(exc).splitlines()[0])
    return await _render(request, dash, method_result=(method, result))


async def edit_desired(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    device_id = request.match_info["device_id"]
    form = await request.post()
    edited = str(form.get("desired", ""))
    etag = str(form.get("etag", ""))
    try:
        new = _json_object(edited, "the desired properties")
        old = _json_object(str(form.get("original", "{}")), "the original desired properties")
    except ValueError as exc:
        return await _render(request, dash, status=400, edit_error=str(exc), edited=edited)
    patch = merge_patch(old, new)
    if not patch:
        raise web.HTTPSeeOther(f"/devices/{quote(device_id, safe='')}?notice=Nothing+changed.")
    try:
        await dash.run(dash.access.update_desired, device_id, patch, etag)
    except PreconditionFailed:
        return await _render(
            request,
            dash,
            status=409,
            conflict=True,
            edited=edited,
            edit_error="Conflict: the twin changed since you loaded it (its etag is no longer "
            f"{etag}). Nothing was written. Review the current desired properties below, then "
            "apply your edit again.",
        )
    except HubError as exc:
        return await _render(
            request, dash, status=400, edit_error=str(exc).splitlines()[0], edited=edited
        )
    raise web.HTTPSeeOther(
        f"/devices/{quote(device_id, safe='')}?notice=Desired+properties+updated."
    )
