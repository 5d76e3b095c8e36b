"""Automatic device configurations: desired content kept applied to every device a target
condition selects, by priority, with counts of targeted and applied devices.

Evaluation runs, debounced, after twin and configuration changes, and on an interval. It looks
only at what changed (`targeting`): the devices whose twins changed, and every device a created
or re-targeted configuration selects. For each device the matching
configuration with the highest priority wins (ties go to the most recently created, as on IoT
Hub); when a device's winner changes, the winner's content is merged into its desired properties
and the device is recorded as applied to it, so content is applied once per (device, winner),
never on every pass. A configuration's content cannot change after creation (IoT Hub's rule);
its target, priority, labels and metrics can.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import queries
from local_hub import errors, events, registry, store, targeting
from local_hub.clock import Clock, iso

__all__ = ["ConfigurationManager", "content_patch"]

log = logging.getLogger(__name__)
_PER_TRANSACTION = 500  # devices whose configuration patches commit together

_ID = re.compile(r"^[a-z0-9\-:+%_#*?!(),=@;$']{1,128}$")
_DESIRED = "properties.desired."
_SCHEMA = """
CREATE TABLE IF NOT EXISTS configurations (config_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configuration_applied (
    device_id TEXT PRIMARY KEY, config_id TEXT NOT NULL
);
"""


def content_patch(device_content: dict[str, Any]) -> dict[str, Any]:
    """The desired-properties patch of `{"properties.desired.a.b": value, ...}`."""
    patch: dict[str, Any] = {}
    for path, value in device_content.items():
        parts = path[len(_DESIRED) :].split(".")
        node = patch
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return patch


def _condition(text: Any, field: str) -> targeting.Target:
    """The compiled target condition (see `targeting.Target.of`).

    Raises:
        BadRequest: not a condition IoT Hub accepts.
    """
    if text is not None and not isinstance(text, str):
        raise errors.BadRequest(
            f"{field} must be a query condition, e.g. \"tags.environment = 'prod'\"."
        )
    try:
        return targeting.Target.of(text)
    except queries.QueryError as exc:
        raise errors.BadRequest(f"{field} is invalid. {exc}", error_code="400020") from None


def _metric_query(name: str, text: Any) -> queries.Query:
    if not isinstance(text, str):
        raise errors.BadRequest(f"Metric {name!r} must be a query text.")
    try:
        return queries.parse(text, strict=True)
    except queries.QueryError as exc:
        raise errors.BadRequest(f"Metric {name!r} is invalid. {exc}", error_code="400020") from None


def _validate(config_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.BadRequest("The configuration must be a JSON object.")
    if not _ID.match(config_id):
        raise errors.BadRequest(
            f"Configuration id {config_id!r} is invalid: use 1 to 128 lower-case letters, digits "
            "or -:+%_#*?!(),=@;$' characters."
        )
    if body.get("id", config_id) != config_id:
        raise errors.BadRequest("The id in the body differs from the one in the path.")
    _condition(body.get("targetCondition"), "targetCondition")
    priority = body.get("priority", 0)
    if type(priority) is not int or priority < 0:
        raise errors.BadRequest("priority must be a whole number, 0 or more.")
    content = (body.get("content") or {}).get("deviceContent")
    if not isinstance(content, dict) or not content:
        raise errors.BadRequest(
            "content.deviceContent must map properties.desired paths to values."
        )
    for path in content:
        if not path.startswith(_DESIRED) or len(path) == len(_DESIRED):
            raise errors.BadRequest(
                f"deviceContent path {path!r} must start with 'properties.desired.'."
            )
    registry.service_patch({"properties": {"desired": content_patch(content)}})
    metric_queries = (body.get("metrics") or {}).get("queries") or {}
    if not isinstance(metric_queries, dict):
        raise errors.BadRequest("metrics.queries must map metric names to queries.")
    for name, text in metric_queries.items():
        _metric_query(name, text)
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise errors.BadRequest("labels must map names to strings.")
    return {
        "id": config_id,
        "schemaVersion": body.get("schemaVersion") or "1.0",
        "labels": labels,
        "content": {"deviceContent": content},
        "targetCondition": body.get("targetCondition") or "",
        "priority": priority,
        "metrics": {"queries": metric_queries, "results": {}},
    }


class ConfigurationManager:
    """Stores configurations and keeps them applied, on the hub's event loop."""

    def __init__(
        self, db: store.Store, hub_registry: registry.Registry, *, clock: Clock,
        interval: float = 5.0,
    ) -> None:  # fmt: skip
        self._store = db
        self._registry = hub_registry
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._dirty: asyncio.Event | None = None
        self._targeting = targeting.Targeting(hub_registry)
        self._applied: dict[str, str] | None = None  # device -> configuration, as the table has it
        self._has_configurations = True  # until a pass finds none
        db.executescript(_SCHEMA)
        hub_registry.add_listener(self._on_event)

    # -- persistence -----------------------------------------------------------------------

    def _load(self, config_id: str) -> dict[str, Any] | None:
        row = self._store.execute(
            "SELECT doc FROM configurations WHERE config_id = ?", (config_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _all(self) -> list[dict[str, Any]]:
        rows = self._store.execute("SELECT doc FROM configurations ORDER BY config_id")
        return [json.loads(doc) for (doc,) in rows]

    def _save(self, config: dict[str, Any]) -> None:
        self._store.execute(
            "INSERT OR REPLACE INTO configurations (config_id, doc) VALUES (?, ?)",
            (config["id"], json.dumps(config)),
        )

    # -- the API ---------------------------------------------------------------------------

    def put(self, config_id: str, body: Any, if_match: str | None) -> dict[str, Any]:
        """Create (no If-Match) or update (If-Match) a configuration."""
        config = _validate(config_id, body)
        existing = self._load(config_id)
        now = iso(self._clock())
        if if_match is None:
            if existing is not None:
                raise errors.Conflict(
                    f"Configuration {config_id!r} already exists; update it with its etag.",
                    error_code="409001",
                )
            config.update(createdTimeUtc=now, etagCounter=1)
        else:
            if existing is None:
                raise errors.NotFound(f"No configuration with id {config_id!r}.")
            registry.check_etag(if_match, existing["etag"], f"configuration {config_id!r}")
            if config["content"] != existing["content"]:
                raise errors.BadRequest(
                    "A configuration's content cannot change; create a new one."
                )
            config.update(
                createdTimeUtc=existing["createdTimeUtc"], etagCounter=existing["etagCounter"] + 1
            )
            config["metrics"]["results"] = existing["metrics"].get("results", {})
            config["systemMetrics"] = existing.get("systemMetrics")
        config["lastUpdatedTimeUtc"] = now
        config["etag"] = f"{config['etagCounter']}"
        config.setdefault("systemMetrics", None)
        config["systemMetrics"] = config["systemMetrics"] or {"results": {}, "queries": {}}
        self._save(config)
        self._evaluate_now()
        return self.get(config_id)

    def get(self, config_id: str) -> dict[str, Any]:
        config = self._load(config_id)
        if config is None:
            raise errors.NotFound(f"No configuration with id {config_id!r}.")
        return {k: v for k, v in config.items() if k != "etagCounter"}

    def list(self, top: int) -> list[dict[str, Any]]:
        return [self.get(c["id"]) for c in self._all()[:top]]

    def delete(self, config_id: str, if_match: str | None) -> None:
        config = self._load(config_id)
        if config is None:
            raise errors.NotFound(f"No configuration with id {config_id!r}.")
        registry.check_etag(if_match, config["etag"], f"configuration {config_id!r}")
        self._store.execute("DELETE FROM configurations WHERE config_id = ?", (config_id,))
        self._store.execute("DELETE FROM configuration_applied WHERE config_id = ?", (config_id,))
        if self._applied is not None:
            self._applied = {d: c for d, c in self._applied.items() if c != config_id}
        self._evaluate_now()

    def test_queries(self, body: Any) -> dict[str, Any]:
        """IoT Hub's "test configuration queries": an error text per invalid query."""
        if not isinstance(body, dict):
            raise errors.BadRequest("The body must hold targetCondition and customMetricQueries.")
        result: dict[str, Any] = {"targetConditionError": "", "customMetricQueryErrors": {}}
        try:
            _condition(body.get("targetCondition"), "targetCondition")
        except errors.BadRequest as exc:
            result["targetConditionError"] = exc.message
        for name, text in (body.get("customMetricQueries") or {}).items():
            try:
                _metric_query(name, text)
            except errors.BadRequest as exc:
                result["customMetricQueryErrors"][name] = exc.message
        return result

    # -- evaluation ------------------------------------------------------------------------

    def start(self) -> None:
        self._dirty = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="configurations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_event(self, event: events.TwinEvent) -> None:
        self._targeting.device_changed(event.device_id)
        if isinstance(event, events.DeviceDeleted):  # a device made again with its id is new
            self._store.execute(
                "DELETE FROM configuration_applied WHERE device_id = ?", (event.device_id,)
            )
            if self._applied is not None:
                self._applied.pop(event.device_id, None)
        if self._has_configurations:
            self._evaluate_now()

    def _evaluate_now(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    async def _loop(self) -> None:
        assert self._dirty is not None
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), self._interval)
                await asyncio.sleep(0.05)  # gather a burst of twin changes into one pass
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                self.evaluate()
            except Exception:
                log.exception("evaluating configurations failed")

    def evaluate(self) -> None:
        """One pass: apply winners that changed, then refresh every configuration's counts."""
        configs = self._all()
        self._has_configurations = bool(configs)
        affected = self._targeting.refresh(configs)
        if not configs:
            return
        if self._applied is None:
            self._applied = dict(
                self._store.execute("SELECT device_id, config_id FROM configuration_applied")
            )
        applied = self._applied
        ranked = sorted(configs, key=lambda c: (c["priority"], c["createdTimeUtc"]), reverse=True)
        targeted = self._targeting.targeted
        changes: list[tuple[str, dict[str, Any]]] = []
        for device_id in sorted(affected):
            winner = next((c for c in ranked if device_id in targeted[c["id"]]), None)
            if winner is not None and applied.get(device_id) != winner["id"]:
                changes.append((device_id, winner))
        # A device's patch and the record of it commit together, many devices a transaction
        # (one fsync each, not one a device); a patch the twin refuses changes nothing.
        for start in range(0, len(changes), _PER_TRANSACTION):
            with self._registry.batch():
                for device_id, winner in changes[start : start + _PER_TRANSACTION]:
                    patch = content_patch(winner["content"]["deviceContent"])
                    try:
                        self._registry.update_twin(
                            device_id, {"properties": {"desired": patch}}, None
                        )
                        self._store.execute(
                            "INSERT OR REPLACE INTO configuration_applied VALUES (?, ?)",
                            (device_id, winner["id"]),
                        )
                    except errors.HubError as exc:
                        log.warning("configuration %s not applied to %s: %s", winner["id"],
                                    device_id, exc.message)  # fmt: skip
                    applied[device_id] = winner["id"]
        for config in configs:
            ids = targeted[config["id"]]
            counts = {
                "targetedCount": len(ids),
                "appliedCount": sum(1 for d in ids if applied.get(d) == config["id"]),
            }
            results = {
                name: self._targeting.metric(config["id"], name)
                for name in config["metrics"]["queries"]
            }
            if counts != config["systemMetrics"].get("results") or results != config["metrics"].get(
                "results"
            ):
                config["systemMetrics"]["results"] = counts
                config["metrics"]["results"] = results
                self._save(config)
