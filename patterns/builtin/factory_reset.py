"""Factory reset: call the `factoryReset` direct method; done when the device reports the
reset of this attempt completed."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationError

from patterns import api
from patterns.contracts import methods

__all__ = ["PATTERN", "FactoryReset", "FactoryResetPattern"]

SECTION = "factoryReset"


class FactoryReset(api.Params):
    kind: Literal["factoryReset"] = "factoryReset"


class FactoryResetPattern:
    kind = "factoryReset"
    params = FactoryReset
    description = "Erase user data and configuration (the factoryReset direct method)."

    def apply(self, params: FactoryReset, device: api.Device) -> api.Verdict:
        payload = methods.FactoryResetPayload(campaign_id=device.attempt.tag)
        return api.invoke(device, methods.FACTORY_RESET, payload.wire())

    def outcome(self, params: FactoryReset, device: api.Device) -> api.Verdict:
        try:
            reported = methods.FactoryResetReported.model_validate(device.reported.get(SECTION))
        except ValidationError:
            return api.Verdict.in_progress()
        if reported.campaign_id != device.attempt.tag:
            return api.Verdict.in_progress()
        if reported.status == methods.FactoryResetStatus.COMPLETED:
            return api.Verdict.succeeded()
        if reported.status == methods.FactoryResetStatus.FAILED:
            return api.Verdict.failed(f"factory reset failed: {reported.error or 'no detail'}")
        return api.Verdict.in_progress()

    def rollback(self, params: FactoryReset) -> None:
        return None


PATTERN = FactoryResetPattern()
