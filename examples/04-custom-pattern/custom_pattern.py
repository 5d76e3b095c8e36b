"""A pattern of your own: its twin contract, its back-end half, its device half, and a campaign.

python examples/04-custom-pattern/custom_pattern.py ./hub

The `sampling` pattern sets how often devices sample their sensor. One file holds all of it here;
in a project, the three parts go in a package that both sides install, and the package declares
them so every twinfleet process finds them without being told (the CLI, the dashboard, agents):

    [project.entry-points."twinfleet.patterns"]
    sampling = "my_fleet.sampling:PATTERN"
    [project.entry-points."twinfleet.handlers"]
    sampling = "my_fleet.sampling:SamplingHandler"

Here the pattern is registered in code (`api.registry().register`) and the handler is given to
each agent (`handlers=[...]`), which is what those entry points do.
"""

import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from device_agent import SimulatedFleet
from device_agent.handlers import api as device_api
from patterns import api
from patterns.campaigns import Campaign, CampaignSpec, DeviceState, Rollout
from twin_manager import Conflict, DeviceNotFound, TwinManager, read_hub_dir

SECTION = "sampling"  # the desired and reported section this pattern owns


# -- the twin contract: one pydantic model per section, shared by both sides ----------------------


class _Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class SamplingDesired(_Section):
    period_seconds: int = Field(ge=1)
    campaign_id: str | None = None  # the attempt's tag, echoed back by the device


class SamplingReported(_Section):
    period_seconds: int | None = None
    status: Literal["applied", "error"]
    error: str | None = None
    campaign_id: str | None = None


# -- the back-end half: a `patterns.api.Pattern` --------------------------------------------------


class Sampling(api.Params):
    """What one campaign of the pattern is given (stored in the hub as JSON)."""

    kind: Literal["sampling"] = "sampling"
    period_seconds: int = Field(ge=1)


class SamplingPattern:
    kind = "sampling"
    params = Sampling
    description = "Set how often devices sample their sensor."

    def apply(self, params: Sampling, device: api.Device) -> api.Verdict:
        wanted = SamplingDesired(period_seconds=params.period_seconds,
                                 campaign_id=device.attempt.tag)  # fmt: skip
        device.fleet.twins.update_desired(device.device_id, {SECTION: wanted.wire()})
        return api.Verdict.in_progress()

    def outcome(self, params: Sampling, device: api.Device) -> api.Verdict:
        try:
            reported = SamplingReported.model_validate(device.reported.get(SECTION))
        except ValidationError:
            return api.Verdict.in_progress()  # nothing reported yet
        if reported.campaign_id != device.attempt.tag:
            return api.Verdict.in_progress()  # an earlier attempt's report: not this one's
        if reported.status == "error":
            return api.Verdict.failed(f"sampling: {reported.error}")
        return api.Verdict.succeeded()

    def rollback(self, params: Sampling) -> None:
        return None  # nothing to undo if a campaign of it aborts


PATTERN = SamplingPattern()


# -- the device half: a `device_agent.handlers.api.SectionHandler` -------------------------------


class SamplingHandler:
    """Applies desired `sampling` on the device; this sensor cannot sample faster than
    `fastest` seconds, and says so."""

    kind = "sampling"
    section = SECTION

    def __init__(self, fastest: int = 1) -> None:
        self.fastest = fastest

    async def reconcile(self, desired: Any, agent: device_api.Agent) -> None:
        if desired is None:
            return  # no desired sampling: keep what runs
        wanted = SamplingDesired.model_validate(desired)
        if wanted.period_seconds < self.fastest:
            outcome = SamplingReported(
                status="error", campaign_id=wanted.campaign_id,
                error=f"this sensor samples at most every {self.fastest} s",
            )  # fmt: skip
        else:  # a real device would reprogram its sensor here
            outcome = SamplingReported(period_seconds=wanted.period_seconds, status="applied",
                                       campaign_id=wanted.campaign_id)  # fmt: skip
        agent.report({SECTION: outcome.wire()})


# -- a campaign of it ---------------------------------------------------------------------------


def main(hub_dir: str) -> None:
    api.registry().register(PATTERN)
    print("patterns:", ", ".join(api.registry().kinds()))
    ca_cert = Path(read_hub_dir(hub_dir).ca_file).read_text()
    with TwinManager.from_hub_dir(hub_dir) as fleet, tempfile.TemporaryDirectory() as state:
        devices = SimulatedFleet().start()
        try:
            for i, fastest in enumerate((1, 1, 10)):  # the last one has a slow sensor
                device_id = f"example-probe-{i}"
                try:
                    fleet.devices.get(device_id)
                except DeviceNotFound:
                    fleet.devices.create(device_id)
                fleet.twins.update_tags(device_id, {"sensor": "probe"})
                devices.add(fleet.devices.connection_string(device_id), Path(state) / device_id,
                            ca_cert=ca_cert, handlers=[SamplingHandler(fastest)])  # fmt: skip

            spec = CampaignSpec(id="example_sampling_5s", pattern=Sampling(period_seconds=5),
                                target="tags.sensor = 'probe'",
                                rollout=Rollout(per_minute=600))  # fmt: skip
            try:
                campaign = Campaign.create(fleet, spec)
            except Conflict:  # created by an earlier run of this example
                campaign = Campaign.load(fleet, spec.id)
            status = campaign.run(poll=0.5)
            print(f"campaign {campaign.id}: {status.status}, {dict(sorted(status.counts.items()))}")
            for device_id, progress in campaign.devices(state=DeviceState.FAILED):
                print(f"  {device_id} failed: {progress.reason}")
            print("reported:", fleet.twins.get("example-probe-0").reported[SECTION])
        finally:
            devices.stop()


if __name__ == "__main__":
    main(sys.argv[1])
