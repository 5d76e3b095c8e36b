"""The `configuration` section: settings applied by a user function, once per version.

What was applied is saved on the device (atomically), so a restarted agent does not apply the
same version again; a new attempt at a version already applied only echoes its `campaignId`.
Reported settings *replace* the reported ones (a key the new settings lack is reported as null),
as a new version's desired settings replaced the old; a failed version leaves the settings in
effect (the last applied ones) reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from device_agent.handlers import api
from device_agent.persistence import StateFile
from patterns.contracts import configuration, patches

__all__ = ["ConfigurationHandler", "Configure"]

Configure = Callable[[dict[str, Any]], None]
_STATE_FILE = "configuration.json"


class ConfigurationHandler:
    """Applies desired `configuration` with `configure(settings)`; raise in it to report an
    error. Without `configure` the settings are recorded as applied."""

    kind = "configuration"
    section = configuration.SECTION

    def __init__(self, configure: Configure | None = None) -> None:
        self.configure = configure
        self._reported_settings: dict[str, Any] | None = None  # what reported settings hold

    def _report(self, agent: api.Agent, outcome: configuration.ConfigurationReported) -> None:
        if self._reported_settings is None:
            before = (agent.reported_at_connect.get(self.section) or {}).get("settings")
            self._reported_settings = dict(before) if isinstance(before, dict) else {}
        section = outcome.wire()
        if outcome.settings is not None:
            section["settings"] = patches.replacement(self._reported_settings, outcome.settings)
            self._reported_settings = dict(outcome.settings)
        agent.report({self.section: section})

    async def reconcile(self, desired: Any, agent: api.Agent) -> None:
        if desired is None:
            return
        state = StateFile(agent.state_dir / _STATE_FILE)
        try:
            wanted = configuration.ConfigurationDesired.model_validate(desired)
        except ValidationError:
            campaign = desired.get("campaignId") if isinstance(desired, dict) else None
            version = desired.get("version") if isinstance(desired, dict) else None
            invalid = configuration.ConfigurationReported(
                version=version if isinstance(version, int) else -1,
                status=configuration.ConfigurationStatus.ERROR,
                error="invalid desired configuration",
                campaign_id=campaign if isinstance(campaign, str) else None,
            )
            agent.report({self.section: invalid.wire()})
            return
        saved = state.load()
        try:
            previous = configuration.ConfigurationReported.model_validate(saved) if saved else None
        except ValidationError:
            previous = None
        if (
            previous is not None
            and previous.version == wanted.version
            and previous.status == configuration.ConfigurationStatus.APPLIED
        ):
            again = previous.model_copy(update={"campaign_id": wanted.campaign_id})
            if again != previous:
                state.save(again.wire())
            self._report(agent, again)
            return
        pending = configuration.ConfigurationReported(
            version=wanted.version, status=configuration.ConfigurationStatus.PENDING,
            campaign_id=wanted.campaign_id,
        )  # fmt: skip
        agent.report({self.section: pending.wire()})
        try:
            if self.configure is not None:
                await asyncio.to_thread(self.configure, wanted.settings)
            outcome = pending.model_copy(
                update={
                    "status": configuration.ConfigurationStatus.APPLIED,
                    "settings": wanted.settings,
                }
            )
        except Exception as exc:
            in_effect = previous.settings if previous is not None else None
            outcome = pending.model_copy(
                update={
                    "status": configuration.ConfigurationStatus.ERROR,
                    "error": str(exc),
                    "settings": in_effect,
                }
            )
        state.save(outcome.wire())
        self._report(agent, outcome)

    def reset(self, agent: api.Agent) -> None:
        """Forget what was applied (a factory reset)."""
        StateFile(agent.state_dir / _STATE_FILE).clear()
