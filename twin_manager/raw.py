"""The hub's JSON as it crosses the SDK seam: one `TypedDict` per document, keys as on the wire.

`twin_manager._sdk` returns these and takes them; `twin_manager.models` turns them into what users
handle. Only the fields twin_manager reads or writes are declared; the hub may send more, and
they are kept (a `Twin` hands its raw document back whole from `to_json`).
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

__all__ = [
    "RawAuthentication",
    "RawBulkFailure",
    "RawBulkResult",
    "RawBulkWarning",
    "RawConfiguration",
    "RawConfigurationContent",
    "RawConfigurationMetrics",
    "RawDevice",
    "RawImportExportJob",
    "RawImportExportRequest",
    "RawJob",
    "RawJobList",
    "RawJobRequest",
    "RawJobWork",
    "RawMethodRequest",
    "RawMethodResult",
    "RawQueryPage",
    "RawSymmetricKey",
    "RawTwin",
    "RawTwinPatch",
    "RawTwinProperties",
]


class RawSymmetricKey(TypedDict, total=False):
    primaryKey: str | None
    secondaryKey: str | None


class RawAuthentication(TypedDict, total=False):
    type: str
    symmetricKey: RawSymmetricKey


class _RawIdentity(TypedDict, total=False):
    """What a device identity and its twin both carry."""

    deviceId: Required[str]
    etag: str
    status: Literal["enabled", "disabled"]
    connectionState: str
    lastActivityTime: str


class RawDevice(_RawIdentity, total=False):
    """A device identity (`GET /devices/{id}`)."""

    authentication: RawAuthentication
    capabilities: dict[str, bool]


class RawTwinProperties(TypedDict, total=False):
    desired: dict[str, Any]
    reported: dict[str, Any]


class RawTwinPatch(TypedDict, total=False):
    """What a twin update or replace sends: tags and desired properties (and an etag in jobs)."""

    etag: str
    tags: dict[str, Any]
    properties: RawTwinProperties


class RawTwin(_RawIdentity, total=False):
    """A device twin (`GET /twins/{id}`, or a `SELECT * FROM devices` row)."""

    version: int
    tags: dict[str, Any]
    properties: RawTwinProperties


class RawMethodRequest(TypedDict):
    """A direct method call (`POST /twins/{id}/methods`)."""

    methodName: str
    payload: Any
    responseTimeoutInSeconds: int
    connectTimeoutInSeconds: int


class RawMethodResult(TypedDict, total=False):
    status: Required[int]
    payload: Any


class RawQueryPage(TypedDict):
    """One page of `POST /devices/query`: its rows as sent, and the next page's token."""

    items: list[dict[str, Any]]
    continuation: str | None


class RawJobWork(TypedDict, total=False):
    """What a job does to each device: patch its twin, or call a method."""

    updateTwin: RawTwinPatch
    cloudToDeviceMethod: RawMethodRequest


class RawJobRequest(RawJobWork, total=False):
    """A scheduled job to create (`PUT /jobs/v2/{id}`)."""

    jobId: Required[str]
    type: Required[Literal["scheduleUpdateTwin", "scheduleDeviceMethod"]]
    queryCondition: Required[str]
    startTime: Required[str]
    maxExecutionTimeInSeconds: Required[int]


class RawJob(TypedDict, total=False):
    """A scheduled job as the hub reports it."""

    jobId: Required[str]
    type: str
    status: str
    queryCondition: str
    createdTime: str
    startTime: str
    endTime: str
    maxExecutionTimeInSeconds: int
    failureReason: str
    statusMessage: str
    deviceJobStatistics: dict[str, int]


class RawJobList(TypedDict, total=False):
    """The hub's answer to `GET /jobs/v2/query`."""

    items: list[RawJob]
    continuationToken: str


class RawImportExportRequest(TypedDict, total=False):
    """An import or export job to start (`POST /jobs/create`): a `JobProperties`."""

    type: Required[Literal["import", "export"]]
    inputBlobContainerUri: str
    outputBlobContainerUri: str
    excludeKeysInExport: bool


class RawImportExportJob(TypedDict, total=False):
    """An import or export job as the hub reports it."""

    jobId: Required[str]
    type: str
    status: str
    progress: int
    startTimeUtc: str
    endTimeUtc: str
    failureReason: str
    outputBlobName: str
    inputBlobName: str


class RawBulkFailure(TypedDict, total=False):
    deviceId: str
    errorCode: str
    errorStatus: str
    operation: str


class RawBulkWarning(TypedDict, total=False):
    deviceId: str
    warningCode: str
    warningStatus: str


class RawBulkResult(TypedDict, total=False):
    """What a bulk registry operation (`POST /devices`) answers."""

    isSuccessful: Required[bool]
    errors: list[RawBulkFailure]
    warnings: list[RawBulkWarning]


class RawConfigurationContent(TypedDict, total=False):
    deviceContent: dict[str, Any]


class RawConfigurationMetrics(TypedDict, total=False):
    queries: dict[str, str]
    results: dict[str, int]


class RawConfiguration(TypedDict, total=False):
    """An automatic device configuration (`PUT /configurations/{id}`)."""

    id: Required[str]
    schemaVersion: str
    labels: dict[str, str]
    content: RawConfigurationContent
    targetCondition: str
    priority: int
    metrics: RawConfigurationMetrics
    systemMetrics: RawConfigurationMetrics
    etag: str | None
    createdTimeUtc: str
    lastUpdatedTimeUtc: str
