"""Job tests: the real service SDK (through twin_manager and IoTHubJobManager) and the real
device SDK against a LocalHub; nothing is faked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_hub import LocalHub
from twin_manager import TwinManager


@pytest.fixture
def fleet(hub: LocalHub) -> Iterator[TwinManager]:
    with TwinManager.from_local_hub(hub) as manager:
        yield manager
