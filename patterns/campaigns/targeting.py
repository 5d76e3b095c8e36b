"""Which devices a campaign may touch: those its target selects, never a retired one.

A retired device (tag `twinfleetRetired`, see `patterns.builtin.retire`) is out of service for
good, so every campaign's target is narrowed by this one module: enqueueing and `plan` query
`target_condition(spec)`, and admission cancels a queued device retired since it was queued
(`is_retired`).
"""

from __future__ import annotations

from typing import Any

from patterns.builtin.retire import RETIRED_TAG
from patterns.campaigns import specs

__all__ = ["NOT_RETIRED", "is_retired", "target_condition"]

NOT_RETIRED = f"NOT IS_DEFINED(tags.{RETIRED_TAG})"


def target_condition(spec: specs.CampaignSpec) -> str:
    """The condition of the devices `spec` targets: its target, retired devices left out."""
    return f"({spec.target}) AND {NOT_RETIRED}"


def is_retired(tags: dict[str, Any]) -> bool:
    """Whether a twin's tags say the device is retired."""
    return tags.get(RETIRED_TAG) is not None
