"""Retiring one device, or replacing it, outside a campaign (`twinfleet device retire|replace`),
through the same `retire` pattern a campaign step uses (found in the pattern registry).

`replace_device(fleet, old, new, ...)` gives the replacement the failed device's tags and desired
properties (campaign progress and retirement tags left behind), so the new device converges to
the same configuration and firmware as its agent reconciles, then retires the old one.
"""

from __future__ import annotations

import time
from typing import Any

from patterns import api
from patterns.builtin.retire import RETIRED_TAG, Retire
from patterns.campaigns.progress import TAG
from patterns.contracts import times
from twin_manager import TwinManager

__all__ = ["RETIRE_STEP", "carried_tags", "replace_device", "retire_device"]

RETIRE_STEP = "operator"  # the step id a retirement outside any campaign is recorded under


def retire_device(fleet: TwinManager, device_id: str, params: Retire) -> api.Verdict:
    """Retire one device now; the verdict says how it went (`note`: who, when, why, what)."""
    twin = fleet.twins.get(device_id)
    attempt = api.Attempt(RETIRE_STEP, 0, times.iso(time.time()))
    device = api.Device(fleet, device_id, attempt, twin.reported, twin.desired)
    return api.registry().get(params.kind).apply(params, device)


def carried_tags(tags: dict[str, Any]) -> dict[str, Any]:
    """The tags a replacement takes over: all but campaign progress and the retirement."""
    return {k: v for k, v in tags.items() if k not in (TAG, RETIRED_TAG)}


def replace_device(fleet: TwinManager, old: str, new: str, params: Retire) -> api.Verdict:
    """Give `new` the tags and desired properties of `old`, then retire `old`.

    Raises:
        DeviceNotFound: `old` or `new` is not registered (nothing is changed).
        ValueError: `old` and `new` are the same device.
    """
    if old == new:
        raise ValueError(f"A device cannot replace itself ({old!r}); name the new device.")
    source = fleet.twins.get(old)
    fleet.twins.get(new)  # it must exist before anything changes
    fleet.twins.update(new, tags=carried_tags(source.tags), desired=source.desired)
    return retire_device(fleet, old, params)
