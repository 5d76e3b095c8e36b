"""Reboot: call the `reboot` direct method; done when the device answers and reports the
reboot of this attempt (a controller that stopped between the two still sees it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError

from patterns import api
from patterns.contracts import methods

__all__ = ["PATTERN", "Reboot", "RebootPattern"]


class Reboot(api.Params):
    kind: Literal["reboot"] = "reboot"
    delay: float = Field(default=0, ge=0, le=3600)


class RebootPattern:
    kind = "reboot"
    params = Reboot
    description = "Restart devices (the reboot direct method)."

    def apply(self, params: Reboot, device: api.Device) -> api.Verdict:
        payload = methods.RebootPayload(delay=params.delay, campaign_id=device.attempt.tag)
        answered = api.invoke(device, methods.REBOOT, payload.wire())
        return api.Verdict.succeeded() if answered.outcome != api.Outcome.FAILED else answered

    def outcome(self, params: Reboot, device: api.Device) -> api.Verdict:
        try:
            reported = methods.RebootReported.model_validate(device.reported.get("reboot"))
        except ValidationError:
            return api.Verdict.in_progress()
        if reported.campaign_id == device.attempt.tag:
            return api.Verdict.succeeded()
        return api.Verdict.in_progress()

    def rollback(self, params: Reboot) -> None:
        return None


PATTERN = RebootPattern()
