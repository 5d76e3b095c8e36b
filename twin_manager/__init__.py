"""The back-end library over azure-iot-hub: typed twins, methods, queries, jobs, configurations.

from twin_manager import TwinManager

with TwinManager.from_connection_string(connection_string) as fleet:  # or .from_hub_dir("hub")
    fleet.twins.update_desired("thermostat-1", {"telemetryInterval": 30})
    print(fleet.queries.group_by("properties.reported.firmware.currentFwVersion"))

`TwinManager` is a small facade: one attribute per concern (`devices`, `twins`, `methods`,
`queries`, `jobs`, `configurations`), each a class of this package.
"""

from twin_manager.artifacts import Artifact, ArtifactStore
from twin_manager.configurations import Configurations
from twin_manager.devices import Devices
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
from twin_manager.jobs import Jobs
from twin_manager.manager import TwinManager
from twin_manager.methods import Methods
from twin_manager.models import (
    Configuration,
    Device,
    DeviceJobResult,
    Job,
    JobStatistics,
    MethodResult,
    Twin,
)
from twin_manager.querying import Queries
from twin_manager.retrying import RetryPolicy
from twin_manager.sentinels import NOT_GIVEN
from twin_manager.twins import Twins

__all__ = [
    "NOT_GIVEN",
    "Artifact",
    "ArtifactNotFound",
    "ArtifactStore",
    "Configuration",
    "Configurations",
    "Conflict",
    "Device",
    "DeviceJobResult",
    "DeviceNotFound",
    "DeviceNotOnline",
    "Devices",
    "HubConfigurationError",
    "HubError",
    "HubUnavailable",
    "InvalidQuery",
    "Job",
    "JobStatistics",
    "Jobs",
    "LocalHubInfo",
    "MethodResult",
    "MethodTimeout",
    "Methods",
    "PreconditionFailed",
    "Queries",
    "RetryPolicy",
    "Throttled",
    "Twin",
    "TwinManager",
    "TwinManagerError",
    "Twins",
    "Unauthorized",
    "read_hub_dir",
]
