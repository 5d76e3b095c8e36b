"""`Configurations`: automatic device configurations (desired content for a targeted set)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from twin_manager import models, raw
from twin_manager._sdk import Sdk
from twin_manager.polling import poll_until
from twin_manager.querying import Queries
from twin_manager.sentinels import NOT_GIVEN, NotGiven

__all__ = ["Configurations"]


class Configurations:
    """Automatic device configurations of one hub (`fleet.configurations`)."""

    def __init__(self, sdk: Sdk, queries: Queries) -> None:
        self._sdk = sdk
        self._queries = queries

    def _check_target(self, target_condition: str) -> None:
        if target_condition.strip() != "*":
            self._queries.validate_condition(target_condition)

    def create(
        self,
        config_id: str,
        *,
        target_condition: str,
        desired: Mapping[str, Any],
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        metrics: Mapping[str, str] | None = None,
    ) -> models.Configuration:
        """An automatic device configuration: `desired` maps paths under `properties.desired`
        (e.g. `{"properties.desired.configuration": {...}}`) to their content; a
        `target_condition` of `*` targets every device.

        Raises:
            InvalidQuery: the target condition is not one IoT Hub would accept.
            Conflict: the id is taken.
        """
        self._check_target(target_condition)
        configuration: raw.RawConfiguration = {
            "id": config_id,
            "schemaVersion": "1.0",
            "labels": dict(labels or {}),
            "content": {"deviceContent": dict(desired)},
            "targetCondition": target_condition,
            "priority": priority,
            "metrics": {"queries": dict(metrics or {})},
        }
        return models.Configuration.from_raw(self._sdk.put_configuration(configuration))

    def get(self, config_id: str) -> models.Configuration:
        return models.Configuration.from_raw(self._sdk.get_configuration(config_id))

    def update(
        self,
        configuration: models.Configuration,
        *,
        target_condition: str | None = None,
        priority: int | None = None,
        labels: Mapping[str, str] | None = None,
        metrics: Mapping[str, str] | None = None,
    ) -> models.Configuration:
        """Change a configuration's targeting, priority, labels or metrics (content is fixed,
        as on IoT Hub). Uses the configuration's etag: stale copies get PreconditionFailed."""
        if target_condition is not None:
            self._check_target(target_condition)
        changed: raw.RawConfiguration = {
            "id": configuration.id,
            "schemaVersion": "1.0",
            "labels": dict(labels if labels is not None else configuration.labels),
            "content": {"deviceContent": configuration.device_content},
            "targetCondition": target_condition or configuration.target_condition,
            "priority": configuration.priority if priority is None else priority,
            "metrics": {
                "queries": dict(metrics if metrics is not None else configuration.metric_queries)
            },
            "etag": configuration.etag,
        }
        return models.Configuration.from_raw(
            self._sdk.put_configuration(changed, configuration.etag or "*")
        )

    def delete(self, config_id: str, *, if_match: str | NotGiven = NOT_GIVEN) -> None:
        self._sdk.delete_configuration(
            config_id, None if isinstance(if_match, NotGiven) else if_match
        )

    def list(self, top: int = 100) -> builtins.list[models.Configuration]:
        return [models.Configuration.from_raw(c) for c in self._sdk.list_configurations(top)]

    def wait_until_applied(
        self, config_id: str, ratio: float, timeout: float, *, poll: float = 0.5
    ) -> models.Configuration:
        """Poll until `appliedCount / targetedCount >= ratio`.

        Raises:
            TimeoutError: the ratio was not reached within `timeout` seconds.
        """

        def applied(configuration: models.Configuration) -> bool:
            targeted = configuration.targeted_count
            return bool(targeted) and configuration.applied_count / targeted >= ratio

        return poll_until(
            lambda: self.get(config_id),
            applied,
            timeout=timeout,
            poll=poll,
            late=lambda c: (
                f"Configuration {config_id!r} reached {c.applied_count}/"
                f"{c.targeted_count} applied, short of {ratio:.0%}, after {timeout:g} s."
            ),
        )
