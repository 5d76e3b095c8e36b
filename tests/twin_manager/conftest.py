"""twin_manager tests: the real service SDK against a real LocalHub; devices through the real
device SDK. Only sleeping between retries is injected, to keep the suite fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_hub import LocalHub
from twin_manager import RetryPolicy, TwinManager


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fleet(hub: LocalHub, sleeps: list[float]) -> Iterator[TwinManager]:
    retry = RetryPolicy(attempts=4, sleep=sleeps.append, jitter=lambda: 0.5)
    with TwinManager.from_local_hub(hub, retry=retry) as manager:
        yield manager
