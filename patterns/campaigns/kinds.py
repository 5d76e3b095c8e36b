"""What each pattern does to a device, and how its reported state says how that went.

Twin-property patterns (firmware, configuration) write a desired section and read the outcome
from reported properties (the contract models); method patterns (reboot, factory reset) call the
direct method, whose answer is the outcome (a factory reset then reports its completion).
"""

from __future__ import annotations

import enum
from typing import Any

from patterns.campaigns import specs
from patterns.contracts import (
    ConfigurationStatus,
    FactoryResetStatus,
    FirmwareStatus,
)
from twin_manager import HubError, TwinManager

__all__ = ["Outcome", "apply", "outcome"]


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"


def attempt_tag(campaign_id: str, attempt: int) -> str:
    """The campaignId a device reports for one attempt (a retry is a new desired state)."""
    return f"{campaign_id}:{attempt}"


def apply(
    fleet: TwinManager, pattern: specs.PatternSpec, campaign_id: str, device_id: str, attempt: int
) -> tuple[Outcome, str]:
    """Start the pattern on one device; returns the immediate outcome and a reason."""
    if isinstance(pattern, specs.FirmwareUpdate):
        firmware: dict[str, Any] = {
            "fwVersion": pattern.version,
            "fwPackageURI": pattern.url,
            "fwPackageCheckValue": pattern.sha256,
            "campaignId": attempt_tag(campaign_id, attempt),
        }
        if pattern.size is not None:
            firmware["fwPackageSize"] = pattern.size
        if pattern.signature is not None:  # the image's own signature, passed through
            firmware["fwPackageSignature"] = pattern.signature
        if pattern.security_floor is not None:
            firmware["fwSecurityFloor"] = pattern.security_floor
        fleet.update_desired(device_id, {"firmware": firmware})
        return Outcome.IN_PROGRESS, ""
    if isinstance(pattern, specs.ConfigurationChange):
        fleet.update_desired(
            device_id, {"configuration": {"version": pattern.version, **pattern.settings}}
        )
        return Outcome.IN_PROGRESS, ""
    method, payload = (
        ("reboot", {"delay": pattern.delay})
        if isinstance(pattern, specs.Reboot)
        else ("factoryReset", {})
    )
    try:
        result = fleet.invoke(device_id, method, payload, timeout=30)
    except HubError as exc:
        return Outcome.FAILED, f"{method}: {exc.error_code or exc.status}"
    if result.status != 200:
        return Outcome.FAILED, f"{method} answered {result.status}"
    if isinstance(pattern, specs.Reboot):
        return Outcome.SUCCEEDED, ""
    return Outcome.IN_PROGRESS, ""


def outcome(
    pattern: specs.PatternSpec, twin_reported: dict[str, Any], campaign_id: str, attempt: int,
    admitted_at: str,
) -> tuple[Outcome, str]:  # fmt: skip
    """What the device's reported properties say about its admitted attempt."""
    if isinstance(pattern, specs.FirmwareUpdate):
        firmware = twin_reported.get("firmware") or {}
        if (
            firmware.get("currentFwVersion") == pattern.version
            and firmware.get("fwUpdateStatus") == FirmwareStatus.CURRENT
        ):
            return Outcome.SUCCEEDED, ""
        mine = firmware.get("campaignId") == attempt_tag(campaign_id, attempt)
        status = firmware.get("fwUpdateStatus")
        if mine and status in (FirmwareStatus.ERROR, FirmwareStatus.ROLLEDBACK):
            return Outcome.FAILED, f"{status}: {firmware.get('fwUpdateSubstatus', '')}"[:120]
        return Outcome.IN_PROGRESS, ""
    if isinstance(pattern, specs.ConfigurationChange):
        configuration = twin_reported.get("configuration") or {}
        if configuration.get("version") != pattern.version:
            return Outcome.IN_PROGRESS, ""
        if configuration.get("status") == ConfigurationStatus.APPLIED:
            return Outcome.SUCCEEDED, ""
        if configuration.get("status") == ConfigurationStatus.ERROR:
            return Outcome.FAILED, f"configuration error: {configuration.get('error')}"[:120]
        return Outcome.IN_PROGRESS, ""
    if isinstance(pattern, specs.FactoryReset):
        reset = twin_reported.get("factoryReset") or {}
        if (
            reset.get("status") == FactoryResetStatus.COMPLETED
            and str(reset.get("lastFactoryReset", "")) >= admitted_at
        ):
            return Outcome.SUCCEEDED, ""
        if reset.get("status") == FactoryResetStatus.FAILED:
            return Outcome.FAILED, "factory reset failed"
        return Outcome.IN_PROGRESS, ""
    return Outcome.SUCCEEDED, ""
