"""`plan`: a dry run. Which devices the target selects now (never a retired one), their group
and wave, and when each wave would start at the configured rate, without touching any twin."""

from __future__ import annotations

from dataclasses import dataclass

import queries
from patterns.campaigns import specs, targeting
from twin_manager import TwinManager

__all__ = ["Plan", "PlannedDevice", "plan"]


@dataclass(frozen=True)
class PlannedDevice:
    device_id: str
    group: str
    wave: int
    starts_after_seconds: float


@dataclass(frozen=True)
class Plan:
    devices: tuple[PlannedDevice, ...]
    groups: dict[str, int]
    duration_seconds: float


def plan(fleet: TwinManager, spec: specs.CampaignSpec) -> Plan:
    """The projected rollout, assuming every device succeeds (rates ramp on successes)."""
    conditions = [(g.name, queries.parse_condition(g.condition)) for g in spec.groups]
    by_group: dict[str, list[str]] = {name: [] for name, _ in conditions}
    fallback = "rest" if spec.groups else "all"
    by_group[fallback] = []
    text = f"SELECT * FROM devices WHERE {targeting.target_condition(spec)}"
    for row in fleet.queries.run(text, page_size=1000):
        name = next((n for n, c in conditions if c.matches(row)), fallback)
        by_group[name].append(row["deviceId"])
    devices: list[PlannedDevice] = []
    clock = 0.0
    done = 0
    for wave, (name, ids) in enumerate((n, i) for n, i in by_group.items() if i):
        for device_id in ids:
            devices.append(PlannedDevice(device_id, name, wave, round(clock, 1)))
            clock += 60 / spec.rollout.rate(done)
            done += 1
    return Plan(tuple(devices), {n: len(i) for n, i in by_group.items() if i}, round(clock, 1))
