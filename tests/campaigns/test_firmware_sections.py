"""A firmware campaign writes desired.firmware whole: fields an earlier campaign set and this one
does not (a signature, a security floor, a size) are cleared, not left beside the new image's
version and checksum, where a device would check the new image against them (found by the CLI's
signed-firmware test: an image signed without a floor, after one signed with a floor, failed to
verify because the old floor was still in the twin)."""

from __future__ import annotations

from typing import Any

from patterns.campaigns import Campaign, CampaignSpec, FirmwareUpdate, Rollout
from twin_manager import TwinManager

SHA_A, SHA_B = "a" * 64, "b" * 64


def test_a_firmware_campaign_leaves_nothing_of_an_earlier_image(
    fleet: TwinManager, devices: Any
) -> None:
    (device,) = devices(1, prefix="sections")
    first = FirmwareUpdate(
        version="2.0.0", package_uri="https://images.example/2.bin", check_value=SHA_A,
        package_size=4096, signature="c2lnbmF0dXJl", security_floor="2.0.0",
    )  # fmt: skip
    second = FirmwareUpdate(
        version="2.1.0", package_uri="https://images.example/2.1.bin", check_value=SHA_B
    )
    for campaign_id, pattern in (("sections_1", first), ("sections_2", second)):
        spec = CampaignSpec(id=campaign_id, pattern=pattern, target=f"deviceId = '{device}'",
                            rollout=Rollout(per_minute=600))  # fmt: skip
        Campaign.create(fleet, spec).tick()
        section = fleet.twins.get(device).desired["firmware"]
        assert section["fwVersion"] == pattern.version
        Campaign.load(fleet, campaign_id).cancel()
    assert section == {
        "fwVersion": "2.1.0", "fwPackageURI": "https://images.example/2.1.bin",
        "fwPackageCheckValue": SHA_B, "campaignId": "sections_2:1", "force": False,
    }  # fmt: skip
