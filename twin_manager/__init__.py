"""The back-end library over azure-iot-hub: typed twins, methods, queries, jobs, configurations.

from twin_manager import TwinManager

with TwinManager.from_connection_string(connection_string) as fleet:  # or .from_hub_dir("hub")
    fleet.update_desired("thermostat-1", {"telemetryInterval": 30})
    print(fleet.group_by("properties.reported.firmware.currentFwVersion"))
"""

from twin_manager.artifacts import Artifact, ArtifactStore
from twin_manager.errors import (
    ArtifactNotFound,
    Conflict,
    DeviceNotFound,
    DeviceNotOnline,
    HubConfigurationError,
    HubError,
    HubUnavailable,
    InvalidQuery,
    MethodTimeout,
    PreconditionFailed,
    Throttled,
    TwinManagerError,
    Unauthorized,
)
from twin_manager.hubdirs import LocalHubInfo, read_hub_dir
from twin_manager.manager import TwinManager
from twin_manager.models import (
    Configuration,
    Device,
    DeviceJobResult,
    Job,
    JobStatistics,
    MethodResult,
    Twin,
)
from twin_manager.retrying import RetryPolicy
from twin_manager.sentinels import NOT_GIVEN
from twin_manager.usage import Usage, UsageSnapshot

__all__ = [
    "NOT_GIVEN",
    "Artifact",
    "ArtifactNotFound",
    "ArtifactStore",
    "Configuration",
    "Conflict",
    "Device",
    "DeviceJobResult",
    "DeviceNotFound",
    "DeviceNotOnline",
    "HubConfigurationError",
    "HubError",
    "HubUnavailable",
    "InvalidQuery",
    "Job",
    "JobStatistics",
    "LocalHubInfo",
    "MethodResult",
    "MethodTimeout",
    "PreconditionFailed",
    "RetryPolicy",
    "Throttled",
    "Twin",
    "TwinManager",
    "TwinManagerError",
    "Unauthorized",
    "Usage",
    "UsageSnapshot",
    "read_hub_dir",
]
