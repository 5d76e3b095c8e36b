"""The `firmware` section: the A/B update state machine (`device_agent.firmware`) as a handler."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from device_agent.firmware import FirmwareUpdater
from device_agent.handlers import api
from device_agent.signatures import TrustStore
from patterns.contracts import firmware

__all__ = ["FirmwareHandler"]


class FirmwareHandler:
    """Drives the firmware toward desired `firmware`; with no desired section it carries an
    update in progress to its end and reports what runs.

    Args:
        max_image_size: the largest image accepted, in bytes.
        ca_file: a CA file to trust for https image URLs.
        trust_store: keys whose signature an image must carry (checked before the download);
            None accepts unsigned images.
        security_floor: the lowest firmware version this device may ever run.
    """

    kind = "firmware"
    section = firmware.SECTION

    def __init__(self, *, max_image_size: int = 512 * 1024 * 1024,
                 ca_file: str | None = None, trust_store: TrustStore | None = None,
                 security_floor: str | None = None) -> None:  # fmt: skip
        self.max_image_size = max_image_size
        self.ca_file = ca_file
        self.trust_store = trust_store
        self.security_floor = security_floor
        self.updater: FirmwareUpdater | None = None

    async def reconcile(self, desired: Any, agent: api.Agent) -> None:
        if self.updater is None:
            self.updater = FirmwareUpdater(
                agent.platform, agent.state_dir, agent.report,
                max_image_size=self.max_image_size, ca_file=self.ca_file,
                trust_store=self.trust_store, security_floor=self.security_floor,
            )  # fmt: skip
        target: firmware.FirmwareDesired | None = None
        if desired is not None:
            try:
                target = firmware.FirmwareDesired.model_validate(desired)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                campaign = desired.get("campaignId") if isinstance(desired, dict) else None
                refused = firmware.FirmwareReported(
                    current_version=agent.platform.current_version(),
                    status=firmware.FirmwareStatus.ERROR,
                    substatus=f"invalid desired firmware: {where}: {problem['msg']}",
                    campaign_id=campaign if isinstance(campaign, str) else None,
                )
                agent.report({self.section: refused.wire()})
                return
        await asyncio.to_thread(self.updater.reconcile, target)
