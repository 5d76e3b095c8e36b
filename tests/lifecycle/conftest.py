"""Device lifecycle tests (bulk import/export, retirement, replacement): real local hubs, the
real service SDK (`IoTHubJobManager`, `IoTHubRegistryManager`), the real device and provisioning
SDKs, the real `twinfleet` CLI in subprocesses; nothing is faked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.iot.hub import IoTHubJobManager

from local_hub import LocalHub


def job_manager(hub: LocalHub) -> Any:
    """The service SDK's job manager for `hub`, trusting its CA for this client only."""
    manager = IoTHubJobManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    return manager


@pytest.fixture
def jobs_of() -> Callable[[LocalHub], Any]:
    """`jobs_of(hub)`: the service SDK's job manager for a hub."""
    return job_manager


# Provisioning services and simulated devices as their own folders' tests run them.
from tests.agent.conftest import SimDevice  # noqa: E402
from tests.provisioning.conftest import RunningDps, make_dps  # noqa: E402

__all__ = ["RunningDps", "SimDevice", "job_manager", "make_dps"]
