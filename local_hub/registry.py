"""The registry: device identities and their twins, in memory and durably in SQLite.

Every change is validated whole, then written to the store (durable when the write returns), then
applied to the in-memory copy, then announced to listeners (`events`). A bad request therefore
changes nothing, and listeners (the MQTT endpoint pushing desired patches, configurations
re-evaluating targets) only ever see committed state. The hot paths (a device's reported patch,
a service twin update) instead join the loop turn's group commit and are acknowledged, and
announced, once it commits; the in-memory copy shows them at once, so a reader may see a change
a moment before it is durable (if that commit fails, on a full or failing disk, the writer gets
a 500 and the change is gone at the next start). All methods run on the hub's event-loop thread.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local_hub import errors, events, indexes, planning, store, twins
from local_hub.clock import NEVER, Clock, iso
from queries import nodes

__all__ = ["Device", "Registry", "check_etag", "new_key", "service_patch"]

log = logging.getLogger(__name__)

_DEVICE_ID = re.compile(r"^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$")
Listener = Callable[[events.TwinEvent], None]


def new_key() -> str:
    """A fresh 256-bit symmetric key, base64 encoded, as IoT Hub generates them."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _etag(counter: int) -> str:
    return base64.b64encode(counter.to_bytes(8, "big")).decode()


def check_etag(if_match: str | None, current: str, what: str) -> None:
    """Honour an If-Match header: absent or `*` always matches; else it must equal `current`.

    Raises:
        PreconditionFailed: the etag is stale.
    """
    if if_match is None:
        return
    wanted = if_match.strip()
    if wanted.startswith("W/"):
        wanted = wanted[2:]
    wanted = wanted.strip('"')
    if wanted not in ("*", current):
        raise errors.PreconditionFailed(
            f"The {what} changed since it was read (etag {wanted!r} is stale, current is "
            f"{current!r}); read it again and retry."
        )


@dataclass
class Device:
    """One device: identity, twin state and persisted MQTT session subscriptions."""

    identity: dict[str, Any]
    twin: dict[str, Any]
    subscriptions: dict[str, int] = field(default_factory=dict)
    view: dict[str, Any] | None = None
    seq: int = 0  # registration order (queries that read every twin read them in this order)

    @property
    def device_id(self) -> str:
        return str(self.identity["deviceId"])

    @property
    def enabled(self) -> bool:
        return bool(self.identity["status"] == "enabled")

    @property
    def keys(self) -> list[bytes]:
        symmetric = self.identity["authentication"]["symmetricKey"]
        return [
            base64.b64decode(k)
            for k in (symmetric.get("primaryKey"), symmetric.get("secondaryKey"))
            if k
        ]


def _empty_twin() -> dict[str, Any]:
    return {
        "tags": {},
        "desired": {},
        "desiredMeta": {},
        "desiredVersion": 1,
        "reported": {},
        "reportedMeta": {},
        "reportedVersion": 1,
        "version": 1,
        "etagCounter": 1,
    }


class Registry:
    """Identities and twins of one hub."""

    def __init__(self, db: store.Store, *, clock: Clock) -> None:
        self._store = db
        self._clock = clock
        self._listeners: list[Listener] = []
        self._devices: dict[str, Device] = {}
        self._ordered: list[str] | None = None  # device ids in order, rebuilt after a change
        self._index = indexes.TwinIndex()
        self._seq = 0
        for _device_id, identity, twin, subscriptions in db.load_devices():
            identity["connectionState"] = "Disconnected"
            self._add(Device(identity, twin, subscriptions))

    def _add(self, device: Device) -> None:
        self._seq += 1
        device.seq = self._seq
        self._devices[device.device_id] = device
        self._index.add_device(device.device_id, device.twin)

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Call `callback` with every event, after the change it reports is committed."""
        self._listeners.append(callback)

    def _emit(self, *happened: events.TwinEvent) -> None:
        for event in happened:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("registry listener failed on %s", type(event).__name__)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make the changes inside one SQLite transaction (one fsync instead of one each): all
        of them are durable when the block ends, none if it raises. Nothing may be awaited
        inside (the loop's connection holds the transaction)."""
        self._store.begin()
        try:
            yield
        except BaseException:
            self._store.rollback()
            raise
        self._store.commit()

    # -- identities ------------------------------------------------------------------------

    def get_device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def _require(self, device_id: str) -> Device:
        device = self._devices.get(device_id)
        if device is None:
            raise errors.DeviceNotFound(f"Device {device_id!r} is not registered on this hub.")
        return device

    def identity(self, device_id: str) -> dict[str, Any]:
        """The identity as the service API returns it."""
        return _public(self._require(device_id).identity)

    def identities(self, top: int | None = None) -> list[dict[str, Any]]:
        devices = list(self._devices.values())[: top if top is not None else None]
        return [_public(d.identity) for d in devices]

    def __len__(self) -> int:
        return len(self._devices)

    def create_device(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a new identity from IoT Hub's Device JSON (keys generated where absent).

        Raises:
            BadRequest: an invalid id, status or authentication.
            Conflict: the id is taken.
        """
        device_id = body.get("deviceId")
        if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
            raise errors.BadRequest(
                f"Device id {device_id!r} is invalid: use 1 to 128 letters, digits or "
                "-.%_*?!(),:=@$' characters."
            )
        if device_id in self._devices:
            raise errors.Conflict(f"A device with id {device_id!r} already exists.")
        status = _status(body.get("status", "enabled"))
        primary, secondary = _keys(body)
        now = iso(self._clock())
        identity: dict[str, Any] = {
            "deviceId": device_id,
            "generationId": f"{secrets.randbits(63)}",
            "etag": _etag(1),
            "connectionState": "Disconnected",
            "status": status,
            "statusReason": body.get("statusReason"),
            "connectionStateUpdatedTime": NEVER,
            "statusUpdatedTime": now,
            "lastActivityTime": NEVER,
            "cloudToDeviceMessageCount": 0,
            "authentication": {
                "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary},
                "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
                "type": "sas",
            },
            "capabilities": {"iotEdge": False},
            "etagCounter": 1,
        }
        twin = _empty_twin()
        self._store.insert_device(device_id, identity, twin)
        self._add(Device(identity, twin))
        self._ordered = None
        log.info("device %s registered", device_id)
        self._emit(events.DeviceCreated(device_id))
        return _public(identity)

    def update_device(self, body: dict[str, Any], if_match: str | None) -> dict[str, Any]:
        """Update status and keys of an existing identity (IoT Hub's PUT with If-Match)."""
        device = self._require(str(body.get("deviceId")))
        check_etag(if_match, device.identity["etag"], f"device {device.device_id!r}")
        status = _status(body.get("status", device.identity["status"]))
        primary, secondary = _keys(body)
        identity = copy.deepcopy(device.identity)
        status_changed = status != identity["status"]
        if status_changed:
            identity["statusUpdatedTime"] = iso(self._clock())
        identity["status"] = status
        identity["statusReason"] = body.get("statusReason")
        identity["authentication"]["symmetricKey"] = {
            "primaryKey": primary,
            "secondaryKey": secondary,
        }
        identity["etagCounter"] += 1
        identity["etag"] = _etag(identity["etagCounter"])
        self._store.save_identity(device.device_id, identity)
        device.identity = identity
        device.view = None
        if status_changed:
            self._emit(events.DeviceStatusChanged(device.device_id, status))
        return _public(identity)

    def delete_device(self, device_id: str, if_match: str | None) -> None:
        device = self._require(device_id)
        check_etag(if_match, device.identity["etag"], f"device {device_id!r}")
        self._store.delete_device(device_id)
        del self._devices[device_id]
        self._index.remove_device(device_id, device.twin)
        self._ordered = None
        log.info("device %s deleted", device_id)
        self._emit(events.DeviceDeleted(device_id))

    # -- twins -----------------------------------------------------------------------------

    def twin(self, device_id: str) -> dict[str, Any]:
        """The twin as the service API returns it."""
        return copy.deepcopy(self._view(self._require(device_id)))

    def ordered_ids(self) -> list[str]:
        """Every device id in code-point order (shared: do not modify). Cursor-paged queries
        resume from a position in it."""
        if self._ordered is None or len(self._ordered) != len(self._devices):
            self._ordered = sorted(self._devices)
        return self._ordered

    def twin_view(self, device_id: str) -> dict[str, Any] | None:
        """One twin as queries see it (a shared, read-only view), None for an unknown id."""
        device = self._devices.get(device_id)
        return None if device is None else self._view(device)

    def twins(self) -> Iterator[dict[str, Any]]:
        """Every twin (shared, read-only views: do not modify them)."""
        for device in list(self._devices.values()):
            yield self._view(device)

    def candidates(self, where: nodes.Expr | None) -> set[str] | None:
        """The devices `where` may select, narrowed by the twin index (`planning`); None when
        it gives the index no handle and every twin must be read. The query still decides."""
        return planning.candidates(where, self._index)

    def twins_of(self, device_ids: set[str]) -> Iterator[dict[str, Any]]:
        """The twins of these devices (unknown ids skipped), in the order `twins()` has them."""
        found = [d for d in map(self._devices.get, device_ids) if d is not None]
        found.sort(key=lambda device: device.seq)
        for device in found:
            yield self._view(device)

    def _view(self, device: Device) -> dict[str, Any]:
        # The view shares the twin's sections: a write replaces a section (sharing only what it
        # did not touch, see `twins.apply_patch`), it never changes one in place.
        if device.view is None:
            identity, twin = device.identity, device.twin
            device.view = {
                "deviceId": identity["deviceId"],
                "etag": _etag(twin["etagCounter"]),
                "deviceEtag": identity["etag"],
                "version": twin["version"],
                "status": identity["status"],
                "statusReason": identity.get("statusReason"),
                "statusUpdateTime": identity["statusUpdatedTime"],
                "connectionState": identity["connectionState"],
                "lastActivityTime": identity["lastActivityTime"],
                "cloudToDeviceMessageCount": 0,
                "authenticationType": "sas",
                "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
                "capabilities": {"iotEdge": False},
                "tags": twin["tags"],
                "properties": {
                    "desired": {
                        **twin["desired"],
                        "$metadata": twin["desiredMeta"],
                        "$version": twin["desiredVersion"],
                    },
                    "reported": {
                        **twin["reported"],
                        "$metadata": twin["reportedMeta"],
                        "$version": twin["reportedVersion"],
                    },
                },
            }
        return device.view

    def twin_properties(self, device_id: str) -> dict[str, Any]:
        """What the device's twin GET returns: desired and reported with `$version`, no metadata."""
        twin = self._require(device_id).twin
        return {
            "desired": {**copy.deepcopy(twin["desired"]), "$version": twin["desiredVersion"]},
            "reported": {**copy.deepcopy(twin["reported"]), "$version": twin["reportedVersion"]},
        }

    def update_twin(
        self, device_id: str, body: Any, if_match: str | None, *, replace: bool = False,
        wait: bool = True,
    ) -> None:  # fmt: skip
        """Patch (or, with `replace`, replace) tags and desired properties from the service side
        (`twin` reads the result: bulk operations and jobs write thousands and read none).

        With `wait=False` the write joins this loop turn's group commit and the call returns at
        once: answer only after `await durable()`. The device hears of a desired change once it
        is committed. By default it returns durable.

        Raises:
            BadRequest: the body is not a twin patch, or breaks a limit; nothing changes.
            DeviceNotFound, PreconditionFailed.
        """
        device = self._require(device_id)
        twin = device.twin
        check_etag(if_match, _etag(twin["etagCounter"]), f"twin of {device_id!r}")
        tags_patch, desired_patch = service_patch(body, ignore_reported=replace)
        if replace:
            tags_patch = (
                twins.diff_patch(twin["tags"], tags_patch) if tags_patch is not None else None
            )
            desired_patch = (
                twins.diff_patch(twin["desired"], desired_patch)
                if desired_patch is not None
                else None
            )
        now = iso(self._clock())
        new = dict(twin)  # its sections are replaced, never changed in place
        if tags_patch:
            new["tags"], _ = twins.apply_patch(
                twin["tags"], {}, tags_patch, now=now, version=None,
                limit=twins.SIZE_LIMITS["tags"], name="tags",
            )  # fmt: skip
        if desired_patch:
            version = twin["desiredVersion"] + 1
            new["desired"], new["desiredMeta"] = twins.apply_patch(
                twin["desired"], twin["desiredMeta"], desired_patch, now=now, version=version,
                limit=twins.SIZE_LIMITS["desired"], name="desired",
            )  # fmt: skip
            new["desiredVersion"] = version
        if tags_patch or desired_patch:
            new["version"] += 1
            new["etagCounter"] += 1
            changed = (("tags",) if tags_patch else ()) + (("desired",) if desired_patch else ())
            if wait:
                self._store.save_twin(device_id, new, changed)
            else:
                self._store.stage(self._store.twin_writes(device_id, new, changed))
            device.twin = new
            device.view = None
            if tags_patch:
                self._index.update_section(
                    device_id, ("tags",), twin["tags"], new["tags"], tags_patch
                )
            if desired_patch:
                self._index.update_section(
                    device_id, ("properties", "desired"), twin["desired"], new["desired"],
                    desired_patch,
                )  # fmt: skip
        changes: list[events.TwinEvent] = []
        if tags_patch:
            changes.append(events.TagsPatched(device_id))
        if desired_patch:
            desired_version = new["desiredVersion"]
            changes.append(events.DesiredPatched(
                device_id, {**copy.deepcopy(desired_patch), "$version": desired_version}
            ))  # fmt: skip
        if wait:
            self._emit(*changes)
        elif changes:
            self._store.when_durable(functools.partial(self._emit, *changes))

    async def durable(self) -> None:
        """Wait until every change made so far is committed (see `update_twin(wait=False)`).

        Raises:
            StoreFailed: the commit failed.
        """
        await self._store.durable()

    def patch_reported(
        self, device_id: str, patch: Any, on_durable: Callable[[int], None] | None = None
    ) -> int:
        """Apply a device's reported-properties patch; returns the new reported `$version`.

        With `on_durable`, the write joins this loop turn's group commit and `on_durable(version)`
        runs once it is committed (the event goes out then too); without, it returns durable.
        Only the reported section and the versions are rewritten.
        """
        device = self._require(device_id)
        twins.validate_patch("reported", patch)
        twin = device.twin
        version = int(twin["reportedVersion"]) + 1
        reported, reported_meta = twins.apply_patch(
            twin["reported"], twin["reportedMeta"], patch, now=iso(self._clock()), version=None,
            limit=twins.SIZE_LIMITS["reported"], name="reported",
        )  # fmt: skip
        new = {**twin, "reported": reported, "reportedMeta": reported_meta}
        new["reportedVersion"] = version
        new["version"] += 1
        new["etagCounter"] += 1
        writes = self._store.twin_writes(device_id, new, ("reported",))
        device.twin = new
        device.view = None
        self._index.update_section(
            device_id, ("properties", "reported"), twin["reported"], reported, patch
        )
        event = events.ReportedPatched(device_id, patch, version)  # a patch parsed for this call
        if on_durable is None:
            self._store.stage(writes)
            self._store.flush()
            self._emit(event)
            return version

        def durable() -> None:
            self._emit(event)
            on_durable(version)

        self._store.stage(writes, durable)
        return version

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once every change made so far is durable."""
        self._store.when_durable(callback)

    # -- connections and sessions -----------------------------------------------------------

    def set_connected(self, device_id: str, connected: bool) -> None:
        device = self._devices.get(device_id)
        if device is None:
            return
        state = "Connected" if connected else "Disconnected"
        if device.identity["connectionState"] == state:
            return
        now = iso(self._clock())
        device.identity["connectionState"] = state
        device.identity["connectionStateUpdatedTime"] = now
        device.identity["lastActivityTime"] = now
        device.view = None
        # Not waited for: a restarted hub marks every device disconnected anyway.
        self._store.save_identity(device_id, device.identity, wait=False)
        self._emit(events.ConnectionChanged(device_id, connected))

    def record_activity(self, device_id: str) -> None:
        device = self._devices.get(device_id)
        if device is not None:
            now = iso(self._clock())
            device.identity["lastActivityTime"] = now
            if device.view is not None:  # every packet lands here: patch, don't rebuild
                device.view["lastActivityTime"] = now

    def add_telemetry(self, device_id: str, properties: dict[str, str], body: bytes) -> None:
        self._require(device_id)
        self._store.add_telemetry(device_id, iso(self._clock()), properties, body)

    def telemetry(self, device_id: str) -> list[tuple[str, dict[str, str], bytes]]:
        self._require(device_id)
        return self._store.telemetry(device_id)

    def load_subscriptions(self, device_id: str) -> dict[str, int]:
        return dict(self._require(device_id).subscriptions)

    def save_subscriptions(self, device_id: str, subscriptions: dict[str, int]) -> None:
        """Stage the device's MQTT session; answer after `when_durable`."""
        device = self._require(device_id)
        self._store.save_subscriptions(device_id, subscriptions)
        device.subscriptions = dict(subscriptions)

    # -- statistics ------------------------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        enabled = sum(1 for d in self._devices.values() if d.enabled)
        connected = sum(
            1 for d in self._devices.values() if d.identity["connectionState"] == "Connected"
        )
        return {
            "totalDeviceCount": len(self._devices),
            "enabledDeviceCount": enabled,
            "disabledDeviceCount": len(self._devices) - enabled,
            "connectedDeviceCount": connected,
        }


def _public(identity: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in identity.items() if k != "etagCounter"}


def _status(value: Any) -> str:
    if value not in ("enabled", "disabled"):
        raise errors.BadRequest(f"Device status must be 'enabled' or 'disabled', not {value!r}.")
    return str(value)


def _keys(body: dict[str, Any]) -> tuple[str, str]:
    auth = body.get("authentication") or {}
    if not isinstance(auth, dict):
        raise errors.BadRequest("authentication must be an object.")
    kind = auth.get("type", "sas")
    if kind != "sas":
        raise errors.BadRequest(f"Authentication type {kind!r} is not supported; use 'sas'.")
    symmetric = auth.get("symmetricKey") or {}
    keys = []
    for name in ("primaryKey", "secondaryKey"):
        key = symmetric.get(name) if isinstance(symmetric, dict) else None
        if key is None or key == "":  # the Node.js SDK sends "" for "generate one", as null
            key = new_key()
        try:
            raw = base64.b64decode(key, validate=True)
        except (ValueError, TypeError):
            raise errors.BadRequest(f"{name} is not valid base64.") from None
        if not 16 <= len(raw) <= 64:
            raise errors.BadRequest(f"{name} must decode to 16 to 64 bytes.")
        keys.append(key)
    return keys[0], keys[1]


def service_patch(
    body: Any, *, ignore_reported: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The validated (tags, desired) patches of a service-side twin body.

    Args:
        body: the request body (a Twin).
        ignore_reported: skip `properties.reported` (a replace may send back a twin it read,
            reported section included) instead of refusing a body that has one.

    Raises:
        BadRequest: the body is not a twin patch or breaks a key rule.
    """
    if not isinstance(body, dict):
        raise errors.BadRequest("The twin patch must be a JSON object.")
    tags = body.get("tags")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise errors.BadRequest("properties must be an object.")
    if properties.get("reported") and not ignore_reported:
        raise errors.BadRequest("Reported properties are written by the device, not the service.")
    desired = properties.get("desired")
    if isinstance(desired, dict):
        desired = {k: v for k, v in desired.items() if k not in ("$metadata", "$version")}
    if tags is not None:
        twins.validate_patch("tags", tags)
    if desired is not None:
        twins.validate_patch("desired", desired)
    return tags, desired
