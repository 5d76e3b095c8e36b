"""The back-end library over azure-iot-hub: typed twins, methods, queries, jobs, configurations.

from twin_manager import TwinManager

with TwinManager.from_connection_string(connection_string) as fleet:  # or .from_hub_dir("hub")
    fleet.update_desired("thermostat-1", {"telemetryInterval": 30})
    print(fleet.group_by("properties.reported.firmware.currentFwVersion"))

Its API:

- `TwinManager`: devices, twins, direct methods, queries, jobs and configurations of one hub
  (`from_connection_string`, `from_hub_dir`, `from_local_hub`); `RetryPolicy` for transient
  failures; `NOT_GIVEN` for "no etag" (JSON null deletes, so None means something).
- What it returns: `Twin`, `Device`, `MethodResult`, `Job`, `JobStatistics`,
  `DeviceJobResult`, `Configuration`.
- A local hub: `read_hub_dir(path)` -> `LocalHubInfo`; its artifacts (firmware images):
  `ArtifactStore`, `Artifact`.
- Bulk identity work: `BulkResult`, `BulkFailure` (the bulk registry API) and
  `ImportExportJob` (import/export jobs).
- The fleet's Device Provisioning Service: `ProvisioningService` (its `block` answers
  `Blocked`), set as `TwinManager.provisioning`.
- The fleet's metadata scheme: `load_scheme("module:Model" or "file.json")` -> `FleetScheme`,
  given as `TwinManager(..., scheme=...)` (see `twin_manager.schemes`).
- Errors, named for what to do next: `TwinManagerError` (the root), `InvalidQuery`,
  `InvalidTags`, `InvalidScheme`, `HubConfigurationError`, and `HubError` with
  `Unauthorized`, `DeviceNotFound`, `ArtifactNotFound`, `DeviceNotOnline`, `MethodTimeout`,
  `Conflict`, `PreconditionFailed`, `Throttled`, `HubUnavailable` (the tree is drawn in
  `twin_manager.errors`).
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
    InvalidScheme,
    InvalidTags,
    MethodTimeout,
    PreconditionFailed,
    Throttled,
    TwinManagerError,
    Unauthorized,
)
from twin_manager.hubdirs import LocalHubInfo, read_hub_dir
from twin_manager.manager import TwinManager
from twin_manager.models import (
    BulkFailure,
    BulkResult,
    Configuration,
    Device,
    DeviceJobResult,
    ImportExportJob,
    Job,
    JobStatistics,
    MethodResult,
    Twin,
)
from twin_manager.provisioning import Blocked, ProvisioningService
from twin_manager.retrying import RetryPolicy
from twin_manager.schemes import FleetScheme, load_scheme
from twin_manager.sentinels import NOT_GIVEN
from twin_manager.usage import Usage, UsageSnapshot

__all__ = [
    "NOT_GIVEN",
    "Artifact",
    "ArtifactNotFound",
    "ArtifactStore",
    "Blocked",
    "BulkFailure",
    "BulkResult",
    "Configuration",
    "Conflict",
    "Device",
    "DeviceJobResult",
    "DeviceNotFound",
    "DeviceNotOnline",
    "FleetScheme",
    "HubConfigurationError",
    "HubError",
    "HubUnavailable",
    "ImportExportJob",
    "InvalidQuery",
    "InvalidScheme",
    "InvalidTags",
    "Job",
    "JobStatistics",
    "LocalHubInfo",
    "MethodResult",
    "MethodTimeout",
    "PreconditionFailed",
    "ProvisioningService",
    "RetryPolicy",
    "Throttled",
    "Twin",
    "TwinManager",
    "TwinManagerError",
    "Unauthorized",
    "Usage",
    "UsageSnapshot",
    "load_scheme",
    "read_hub_dir",
]
