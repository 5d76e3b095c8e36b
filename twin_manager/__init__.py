"""The back-end library over azure-iot-hub: typed twins, methods, queries, jobs, configurations.

from twin_manager import TwinManager

with TwinManager.from_connection_string(connection_string) as fleet:  # or .from_hub_dir("hub")
    fleet.twins.update_desired("thermostat-1", {"telemetryInterval": 30})
    print(fleet.queries.group_by("properties.reported.firmware.currentFwVersion"))

Its API:

- `TwinManager`: one hub (`from_connection_string`, `from_hub_dir`, `from_local_hub`), a small
  facade with one attribute per concern, each a class of this package: `devices` (`Devices`:
  identities, keys, bulk registry), `twins` (`Twins`), `methods` (`Methods`), `queries`
  (`Queries`), `jobs` (`Jobs`: scheduled and import/export jobs), `configurations`
  (`Configurations`); `RetryPolicy` for transient failures; `NOT_GIVEN` for "no etag" (JSON
  null deletes, so None means something).
- What it returns: `Twin`, `Device`, `MethodResult`, `Job`, `JobStatistics`,
  `DeviceJobResult`, `Configuration`.
- A local hub: `read_hub_dir(path)` -> `LocalHubInfo`; its artifacts (firmware images):
  `ArtifactStore`, `Artifact`.
- What this client has spent of the hub's quotas: `fleet.usage` (`Usage`, read as a
  `UsageSnapshot`: requests per IoT Hub throttle and the 429s seen).
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
    InvalidScheme,
    InvalidTags,
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
from twin_manager.querying import Queries
from twin_manager.retrying import RetryPolicy
from twin_manager.schemes import FleetScheme, load_scheme
from twin_manager.sentinels import NOT_GIVEN
from twin_manager.twins import Twins
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
    "Configurations",
    "Conflict",
    "Device",
    "DeviceJobResult",
    "DeviceNotFound",
    "DeviceNotOnline",
    "Devices",
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
    "Jobs",
    "LocalHubInfo",
    "MethodResult",
    "MethodTimeout",
    "Methods",
    "PreconditionFailed",
    "ProvisioningService",
    "Queries",
    "RetryPolicy",
    "Throttled",
    "Twin",
    "TwinManager",
    "TwinManagerError",
    "Twins",
    "Unauthorized",
    "Usage",
    "UsageSnapshot",
    "load_scheme",
    "read_hub_dir",
]
