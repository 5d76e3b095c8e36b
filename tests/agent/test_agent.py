"""The agent end to end: the real device SDK, the local hub, a simulated A/B device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_agent import SimulatedPlatform
from device_agent.platforms import FAIL_FIRST_BOOT
from local_hub import LocalHub
from twin_manager import TwinManager

IMAGE = b"twinfleet firmware 2.0.0 " * 4000


def _firmware(fleet: TwinManager, device_id: str) -> dict[str, Any]:
    return dict(fleet.twins.get(device_id).reported.get("firmware") or {})


def _settled(fleet: TwinManager, device_id: str, status: str) -> dict[str, Any] | None:
    firmware = _firmware(fleet, device_id)
    return firmware if firmware.get("fwUpdateStatus") == status else None


def test_full_update_reports_the_new_version(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, tmp_path: Path, upload: Any, eventually: Any
) -> None:
    device = sim_device("fw-ok")
    eventually(lambda: _settled(fleet, "fw-ok", "current"), what="first report")
    desired = {"fwVersion": "2.0.0", **upload("fw-2.0.0.bin", IMAGE), "campaignId": "c1"}
    fleet.twins.update_desired("fw-ok", {"firmware": desired})
    done = eventually(
        lambda: (
            (f := _firmware(fleet, "fw-ok")).get("currentFwVersion") == "2.0.0"
            and f["fwUpdateStatus"] == "current"
            and f
        ),
        what="update to 2.0.0",
    )
    assert done["pendingFwVersion"] == ""
    assert done["campaignId"] == "c1"
    assert done["lastFwUpdateEndTime"]
    device.stop()
    platform = SimulatedPlatform(tmp_path / "fw-ok" / "platform")
    assert platform.current_version() == "2.0.0"
    assert (tmp_path / "fw-ok" / "platform" / "slots" / "b").read_bytes() == IMAGE


def test_bad_checksum_is_an_error_and_the_old_firmware_runs(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, eventually: Any
) -> None:
    sim_device("fw-bad")
    desired = {"fwVersion": "2.0.0", **upload("fw-bad.bin", IMAGE)}
    desired["fwPackageCheckValue"] = "0" * 64
    fleet.twins.update_desired("fw-bad", {"firmware": desired})
    failed = eventually(lambda: _settled(fleet, "fw-bad", "error"), what="error")
    assert "checksum mismatch" in failed["fwUpdateSubstatus"]
    assert failed["currentFwVersion"] == "1.0.0"


def test_missing_image_is_an_error(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, eventually: Any
) -> None:
    sim_device("fw-404")
    desired = {"fwVersion": "2.0.0", "fwPackageURI": hub.artifact_url("nope.bin"),
               "fwPackageCheckValue": "a" * 64}  # fmt: skip
    fleet.twins.update_desired("fw-404", {"firmware": desired})
    failed = eventually(lambda: _settled(fleet, "fw-404", "error"), what="error")
    assert "HTTP 404" in failed["fwUpdateSubstatus"]


def test_failed_first_boot_rolls_back(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, eventually: Any
) -> None:
    sim_device("fw-rollback")
    image = FAIL_FIRST_BOOT + IMAGE
    desired = {"fwVersion": "2.0.0", **upload("fw-fails.bin", image)}
    fleet.twins.update_desired("fw-rollback", {"firmware": desired})
    rolled = eventually(lambda: _settled(fleet, "fw-rollback", "rolledback"), what="rollback")
    assert rolled["currentFwVersion"] == "1.0.0"
    assert "failed its first boot" in rolled["fwUpdateSubstatus"]


def test_downgrade_needs_force(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, eventually: Any
) -> None:
    sim_device("fw-down", initial_version="3.0.0")
    desired = {"fwVersion": "2.0.0", **upload("fw-down.bin", IMAGE)}
    fleet.twins.update_desired("fw-down", {"firmware": desired})
    refused = eventually(lambda: _settled(fleet, "fw-down", "error"), what="refusal")
    assert "refused downgrade" in refused["fwUpdateSubstatus"]
    fleet.twins.update_desired("fw-down", {"firmware": {"force": True}})
    eventually(
        lambda: _firmware(fleet, "fw-down").get("currentFwVersion") == "2.0.0", what="forced"
    )


def test_offline_device_catches_up_and_repeats_are_no_ops(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, tmp_path: Path, upload: Any, eventually: Any
) -> None:
    fleet.devices.create("fw-late")
    desired = {"fwVersion": "2.0.0", **upload("fw-late.bin", IMAGE)}
    fleet.twins.update_desired(
        "fw-late", {"firmware": desired, "configuration": {"version": 3, "interval": 10}}
    )
    applied: list[dict[str, Any]] = []
    device = sim_device("fw-late", configure=applied.append)
    eventually(
        lambda: _firmware(fleet, "fw-late").get("currentFwVersion") == "2.0.0", what="catch-up"
    )
    eventually(
        lambda: (
            fleet.twins.get("fw-late").reported.get("configuration", {}).get("status") == "applied"
        )
    )
    assert applied == [{"interval": 10}]
    boots = SimulatedPlatform(tmp_path / "fw-late" / "platform")._load()["boots"]
    fleet.twins.update_desired("fw-late", {"unrelated": 1})  # a new desired version, same sections
    fleet.twins.update_desired("fw-late", {"firmware": desired})  # the same firmware again
    eventually(lambda: fleet.twins.get("fw-late").desired_version >= 4)
    # a section no handler covers is said so, not silently ignored, and cleared once removed
    eventually(
        lambda: (
            fleet.twins.get("fw-late").reported.get("agent") == {"unhandledSections": ["unrelated"]}
        ),
        what="the unhandled section reported",
    )
    fleet.twins.update_desired("fw-late", {"unrelated": None})
    eventually(
        lambda: "agent" not in fleet.twins.get("fw-late").reported, what="the report cleared"
    )
    device.stop()
    assert SimulatedPlatform(tmp_path / "fw-late" / "platform")._load()["boots"] == boots
    assert applied == [{"interval": 10}]


def test_reboot_and_factory_reset_methods(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, eventually: Any
) -> None:
    device = sim_device("methods-1")
    eventually(lambda: _settled(fleet, "methods-1", "current"), what="first report")
    eventually(lambda: fleet.twins.get("methods-1").connection_state == "Connected")
    result = fleet.methods.invoke("methods-1", "reboot", {"delay": 0}, timeout=10)
    assert result.status == 200
    eventually(
        lambda: fleet.twins.get("methods-1").reported.get("reboot", {}).get("lastReboot"),
        what="reboot",
    )
    eventually(
        lambda: fleet.twins.get("methods-1").connection_state == "Connected", what="back online"
    )
    # Until the reboot happened, the old boot (which reported the reboot, then goes down) answers
    # 503 rather than accepting a reset it would not finish; the new boot accepts it.
    reset = eventually(
        lambda: _try_invoke(fleet, "methods-1", "factoryReset", unless=503),
        what="factory reset accepted",
    )
    assert reset.status == 200
    done = eventually(
        lambda: (
            fleet.twins.get("methods-1").reported.get("factoryReset", {}).get("status")
            == "completed"
        )
    )
    assert done
    assert fleet.methods.invoke("methods-1", "selfDestruct", timeout=10).status == 404
    device.stop()


def _try_invoke(fleet: TwinManager, device_id: str, method: str, unless: int = 0) -> Any:
    """The method's result; None while the device is offline or answers status `unless`."""
    try:
        result = fleet.methods.invoke(device_id, method, {}, timeout=10, connect_timeout=5)
    except Exception:
        return None
    if result.status == unless:
        assert "call the method again once the device is back online" in str(result.payload)
        return None
    return result
