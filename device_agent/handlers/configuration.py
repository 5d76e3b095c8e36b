"""The `configuration` section: settings applied by a user function, once per version.

What was applied is saved on the device (atomically), so a restarted agent does not apply the
same version again; a new attempt at a version already applied only echoes its `campaignId`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from device_agent.handlers import api
from device_agent.persistence import StateFile
from patterns.contracts import configuration

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
            agent.report({self.section: again.wire()})
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
            outcome = pending.model_copy(
                update={"status": configuration.ConfigurationStatus.ERROR, "error": str(exc)}
            )
        state.save(outcome.wire())
        agent.report({self.section: outcome.wire()})

    def reset(self, agent: api.Agent) -> None:
        """Forget what was applied (a factory reset)."""
        StateFile(agent.state_dir / _STATE_FILE).clear()
