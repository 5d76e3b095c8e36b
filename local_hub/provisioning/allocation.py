"""Choosing the hub a registration is assigned to.

`hashed`: a hash of the registration id picks one of the candidate hubs, so devices spread evenly
and a device keeps its hub for as long as the set of hubs stays the same. `static`: the first
candidate. The candidates are the enrollment's `iotHubs` (assigned-hub hosts), or every linked hub
when it names none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["NoHub", "choose_hub"]


class NoHub(LookupError):
    """No linked hub may take the registration."""


def choose_hub(
    policy: str, registration_id: str, linked: Sequence[str], allowed: Sequence[str]
) -> str:
    """The assigned-hub host for `registration_id` among `linked` hosts (restricted to `allowed`
    when it names any)."""
    candidates = [hub for hub in linked if not allowed or hub in allowed]
    if not candidates:
        raise NoHub("none of the enrollment's hubs is linked to this provisioning service")
    if policy == "static":
        return candidates[0]
    digest = hashlib.sha256(registration_id.encode()).digest()
    return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]
