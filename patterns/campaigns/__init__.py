"""Back-end campaigns: the four patterns rolled out safely over twin queries.

spec = CampaignSpec(id="fw_2_0", pattern=FirmwareUpdate(...), target="tags.model = 'gw-100'",
                    groups=(Group(name="canary", condition="tags.ring = 'canary'"),),
                    rollout=Rollout(per_minute=120), abort=AbortCriteria(failure_percent=20))
campaign = Campaign.create(fleet, spec)
campaign.run()
"""

from patterns.campaigns import pacing, progress, records, specs, targeting
from patterns.campaigns.campaign import FINAL, Campaign, CampaignStatus
from patterns.campaigns.planning import Plan, PlannedDevice, plan
from patterns.campaigns.progress import CampaignState, DeviceProgress, DeviceState
from patterns.campaigns.specs import (
    AbortCriteria,
    CampaignSpec,
    ConfigurationChange,
    FactoryReset,
    FirmwareUpdate,
    Group,
    HealthGate,
    Reboot,
    Retries,
    Rollout,
)

__all__ = [
    "FINAL",
    "AbortCriteria",
    "Campaign",
    "CampaignSpec",
    "CampaignState",
    "CampaignStatus",
    "ConfigurationChange",
    "DeviceProgress",
    "DeviceState",
    "FactoryReset",
    "FirmwareUpdate",
    "Group",
    "HealthGate",
    "Plan",
    "PlannedDevice",
    "Reboot",
    "Retries",
    "Rollout",
    "pacing",
    "plan",
    "progress",
    "records",
    "specs",
    "targeting",
]
