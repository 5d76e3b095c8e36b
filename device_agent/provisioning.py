"""Provisioning: a device that knows a provisioning service, never a hub.

A provisioned device holds four things: the provisioning host, the ID scope, its registration id
and its symmetric key (in an enrollment group, the key derived from the group's). On its first
boot it registers with the Device Provisioning Service (`ProvisioningDeviceClient`, through the
SDK seam), stores the assignment (the hub's host name and its device id there) atomically in its
state directory, and connects to that hub with the same key. Later boots connect with the stored
assignment without asking the service, so a device comes up while the service is down. The
stored assignment names the service, scope and registration id it came from: a device given
other ones registers again.

When the hub refuses the device (its identity was deleted or disabled, or the service moved it
to another hub and removed it from this one), the device forgets the assignment and registers
again. Every retry waits first: after the n-th failure in a row the device waits a random time
between d/2 and d, d = min(cap, initial x 2^n) (exponential backoff with jitter, so a fleet
refused at once does not come back at once, and a device whose enrollment is disabled asks about
once per `cap`, never in a hot loop). A session in which the device was connected starts the
count again.

    source = Provisioner(Credentials(host, scope, registration_id, key), state_dir, ca_pem=ca)
    outcome = await run_sessions(source, lambda cs: DeviceAgent(cs, platform, state_dir).run())
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from device_agent import _client, errors
from device_agent.persistence import StateFile

__all__ = [
    "Assignment",
    "Backoff",
    "ConnectionSource",
    "Credentials",
    "FixedConnection",
    "Provisioner",
    "run_sessions",
]

log = logging.getLogger(__name__)

ASSIGNMENT_FILE = "assignment.json"


class Backoff:
    """Exponential backoff with jitter and a cap (see the module doc).

    Args:
        initial: the first delay's upper bound, seconds.
        cap: the largest delay, seconds.
        rng: a uniform random number in [0, 1) (seeded in tests).
    """

    def __init__(
        self, initial: float = 2.0, cap: float = 300.0, rng: Callable[[], float] = random.random
    ) -> None:
        if not 0 < initial <= cap:
            raise ValueError("the backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self._rng = rng
        self._failures = 0

    def next(self) -> float:
        """The delay before the next attempt (one more failure counted)."""
        ceiling = min(self.cap, self.initial * 2.0 ** min(self._failures, 32))
        self._failures += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self._failures = 0


@dataclass(frozen=True)
class Credentials:
    """What a provisioned device knows: never a hub. `repr` never shows the key."""

    provisioning_host: str
    id_scope: str
    registration_id: str
    symmetric_key: str = field(repr=False)


@dataclass(frozen=True)
class Assignment:
    """Where the provisioning service assigned the device, and which registration it was."""

    provisioning_host: str
    id_scope: str
    registration_id: str
    assigned_hub: str
    device_id: str
    assigned_at: str

    def matches(self, credentials: Credentials) -> bool:
        return (self.provisioning_host, self.id_scope, self.registration_id) == (
            credentials.provisioning_host, credentials.id_scope, credentials.registration_id,
        )  # fmt: skip


class ConnectionSource(Protocol):
    """Where a device's connection string comes from: fixed, or a provisioning service."""

    @property
    def description(self) -> str:
        """What to call the device in logs before it is connected."""
        ...

    async def connection_string(self, refused: errors.HubRefused | None) -> str:
        """The connection string for the next session; `refused` is why the last one ended.

        Raises:
            HubRefused: `refused`, when this source cannot get other credentials.
        """
        ...


class FixedConnection:
    """A connection string given once (by hand, or by `twinfleet device create`)."""

    def __init__(self, connection_string: str, device_id: str) -> None:
        self._connection_string = connection_string
        self.description = device_id

    async def connection_string(self, refused: errors.HubRefused | None) -> str:
        if refused is not None:
            raise refused
        return self._connection_string


class Provisioner:
    """Gets the device's hub from the provisioning service, keeps it, and asks again when the
    hub refuses the device (see the module doc).

    Args:
        credentials: the provisioning host, ID scope, registration id and key.
        state_dir: where the assignment is kept (`assignment.json`).
        ca_pem: PEM text of a CA to trust for the service and the hub (a local one's).
        backoff: the retry delays (default: 2 s doubling up to 5 minutes, with jitter).
        sleep: waits a number of seconds (injected in tests).
    """

    def __init__(
        self, credentials: Credentials, state_dir: Path, *, ca_pem: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:  # fmt: skip
        self.credentials = credentials
        self._state = StateFile(Path(state_dir) / ASSIGNMENT_FILE)
        self._ca_pem = ca_pem
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self.attempts = 0  # registrations tried by this process

    @property
    def description(self) -> str:
        return f"registration {self.credentials.registration_id}"

    def stored(self) -> Assignment | None:
        """The stored assignment, if it belongs to these credentials."""
        try:
            data = self._state.load()
            assignment = Assignment(**data) if data else None
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable stored assignment in %s", self._state.path)
            return None
        if assignment is None or not assignment.matches(self.credentials):
            return None
        return assignment

    def forget(self) -> None:
        self._state.clear()

    async def assignment(self) -> Assignment:
        """The stored assignment, or a new one from the service (registering until it assigns,
        with backoff)."""
        stored = self.stored()
        if stored is not None:
            return stored
        credentials = self.credentials
        while True:
            self.attempts += 1
            log.info("registering %s with %s (ID scope %s)", credentials.registration_id,
                     credentials.provisioning_host, credentials.id_scope)  # fmt: skip
            try:
                registration = await _client.register(
                    credentials.provisioning_host, credentials.id_scope,
                    credentials.registration_id, credentials.symmetric_key, self._ca_pem,
                )  # fmt: skip
            except errors.ProvisioningFailed as exc:
                delay = self.backoff.next()
                log.warning("%s; registering again in %.1f s", exc, delay)
                await self._sleep(delay)
                continue
            now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
            assignment = Assignment(
                credentials.provisioning_host, credentials.id_scope, credentials.registration_id,
                registration.assigned_hub, registration.device_id, now,
            )  # fmt: skip
            self._state.save(asdict(assignment))
            log.info("%s assigned to hub %s as device %s (%s)", credentials.registration_id,
                     registration.assigned_hub, registration.device_id,
                     registration.substatus)  # fmt: skip
            return assignment

    async def connection_string(self, refused: errors.HubRefused | None) -> str:
        if refused is not None:
            self.forget()
            if refused.after_connect:
                self.backoff.reset()
            delay = self.backoff.next()
            log.warning("the hub refused %s: %s; provisioning again in %.1f s",
                        self.credentials.registration_id, refused, delay)  # fmt: skip
            await self._sleep(delay)
        assignment = await self.assignment()
        return (
            f"HostName={assignment.assigned_hub};DeviceId={assignment.device_id};"
            f"SharedAccessKey={self.credentials.symmetric_key}"
        )


async def run_sessions(source: ConnectionSource, session: Callable[[str], Awaitable[str]]) -> str:
    """Run `session(connection_string)` until it ends other than by the hub refusing the device;
    after a refusal, the source gives the next connection string (a provisioned device registers
    again) or raises the refusal. Returns what the last session returned.

    Raises:
        HubRefused: the hub refused a device whose source cannot get other credentials.
    """
    refused: errors.HubRefused | None = None
    while True:
        connection_string = await source.connection_string(refused)
        try:
            return await session(connection_string)
        except errors.HubRefused as exc:
            refused = exc
