"""A configuration campaign from Python: canaries first, at a rate, with per-device results.

python examples/03-campaign/campaign.py ./hub

The devices here are simulated in this process (the same agent a real device runs, on a simulated
platform); on a real fleet they run `twinfleet-agent` and the back-end half is all you write.
"""

import sys
import tempfile
from pathlib import Path

from device_agent import SimulatedFleet
from patterns.campaigns import (
    Campaign,
    CampaignSpec,
    ConfigurationChange,
    DeviceState,
    Group,
    Rollout,
)
from twin_manager import Conflict, DeviceNotFound, TwinManager, read_hub_dir

DEVICES = [f"example-gateway-{i}" for i in range(4)]


def register(fleet: TwinManager) -> None:
    for i, device_id in enumerate(DEVICES):
        try:
            fleet.devices.get(device_id)
        except DeviceNotFound:
            fleet.devices.create(device_id)
        fleet.twins.update_tags(
            device_id, {"model": "gw-100", "ring": "canary" if i == 0 else "main"}
        )


def main(hub_dir: str) -> None:
    ca_cert = Path(read_hub_dir(hub_dir).ca_file).read_text()
    with TwinManager.from_hub_dir(hub_dir) as fleet, tempfile.TemporaryDirectory() as state:
        register(fleet)
        devices = SimulatedFleet().start()
        try:
            for device_id in DEVICES:
                devices.add(fleet.devices.connection_string(device_id),
                            Path(state) / device_id, ca_cert=ca_cert)  # fmt: skip

            spec = CampaignSpec(
                id="example_settings_v2",
                pattern=ConfigurationChange(version=2, settings={"telemetryInterval": 15}),
                target="tags.model = 'gw-100'",  # the devices it is for (a query condition)
                groups=(Group(name="canary", condition="tags.ring = 'canary'"),),  # first wave
                rollout=Rollout(per_minute=600),
            )
            try:
                campaign = Campaign.create(fleet, spec)  # stored in the hub, not in this process
            except Conflict:  # created by an earlier run of this example: carry on with it
                campaign = Campaign.load(fleet, spec.id)
            print(f"campaign {campaign.id}: {campaign.status().status}")

            # `run` ticks until every device has an outcome; any other process could watch,
            # pause or cancel it meanwhile (`twinfleet campaign status example_settings_v2`).
            status = campaign.run(poll=0.5)
            print(f"campaign {campaign.id}: {status.status}, {status.counts}")
            for device_id, progress in campaign.devices():
                print(f"  {device_id} ({progress.group}): {progress.state}")
            failed = campaign.devices(state=DeviceState.FAILED)
            print("failed:", [device_id for device_id, _ in failed])
            print("reported:", fleet.twins.get(DEVICES[0]).reported["configuration"]["status"])
            print("log:", *status.log, sep="\n  ")
        finally:
            devices.stop()


if __name__ == "__main__":
    main(sys.argv[1])
