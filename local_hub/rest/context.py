"""What every REST handler needs: the registry, the device endpoint, keys and the clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from local_hub import configurations, errors, jobs, quotas, registry
from local_hub.clock import Clock
from local_hub.mqtt import DeviceEndpoint

__all__ = ["CONTEXT", "Faults", "ServiceContext", "json_body", "json_response", "of"]


@dataclass
class Faults:
    """Test-only fault injection: the next `remaining` requests fail with `status`."""

    status: int = 0
    remaining: int = 0
    retry_after: float = 1.0

    def take(self) -> errors.HubError | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        if self.status == 429:
            return errors.Throttled("Injected fault: throttled.", retry_after=self.retry_after)
        return errors.ServerError("Injected fault: service unavailable.", status=self.status)


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
    configurations: configurations.ConfigurationManager | None = None
    faults: Faults = field(default_factory=Faults)
    quotas: quotas.Quotas | None = None


CONTEXT = web.AppKey("twinfleet-context", ServiceContext)


def of(request: web.Request) -> ServiceContext:
    return request.app[CONTEXT]


async def json_body(request: web.Request) -> Any:
    """The request's JSON body.

    Raises:
        BadRequest: the body is empty, too large or not JSON.
    """
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.BadRequest("The request body is too large.", error_code="413001") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"The request body is not valid JSON: {exc}.") from None


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
