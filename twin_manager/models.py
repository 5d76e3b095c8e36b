"""What users read and write: typed, validated views of IoT Hub's JSON (no msrest objects)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from twin_manager import raw as wire

__all__ = [
    "BulkFailure",
    "BulkResult",
    "Configuration",
    "Device",
    "DeviceJobResult",
    "ImportExportJob",
    "Job",
    "JobStatistics",
    "MethodResult",
    "Twin",
]


def _without_dollars(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if not k.startswith("$")}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class Device(_Model):
    """A device identity. `primary_key` and `secondary_key` are secrets: never log them."""

    device_id: str = Field(alias="deviceId")
    status: Literal["enabled", "disabled"]
    etag: str | None = None
    connection_state: str | None = Field(default=None, alias="connectionState")
    last_activity_time: datetime | None = Field(default=None, alias="lastActivityTime")
    primary_key: str | None = Field(default=None, repr=False)
    secondary_key: str | None = Field(default=None, repr=False)

    @classmethod
    def from_raw(cls, raw: wire.RawDevice) -> Device:
        symmetric = (raw.get("authentication") or {}).get("symmetricKey") or {}
        return cls.model_validate(
            {
                **raw,
                "primary_key": symmetric.get("primaryKey"),
                "secondary_key": symmetric.get("secondaryKey"),
            }
        )


class Twin(_Model):
    """A device twin: tags, desired and reported properties with their versions and metadata."""

    device_id: str = Field(alias="deviceId")
    etag: str | None = None
    version: int | None = None
    status: str | None = None
    connection_state: str | None = Field(default=None, alias="connectionState")
    last_activity_time: datetime | None = Field(default=None, alias="lastActivityTime")
    tags: dict[str, Any] = Field(default_factory=dict)
    desired: dict[str, Any] = Field(default_factory=dict)
    reported: dict[str, Any] = Field(default_factory=dict)
    desired_version: int = 0
    reported_version: int = 0
    desired_metadata: dict[str, Any] = Field(default_factory=dict)
    reported_metadata: dict[str, Any] = Field(default_factory=dict)
    _raw: wire.RawTwin | None = PrivateAttr(default=None)

    def to_json(self) -> dict[str, Any]:
        """The twin as IoT Hub returns it (`properties.desired` with `$metadata` and `$version`),
        so paths read from it work in queries as they are."""
        if self._raw is not None:
            return dict(copy.deepcopy(self._raw))
        identity = self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            include={"device_id", "etag", "version", "status", "connection_state",
                     "last_activity_time"},
        )  # fmt: skip
        return {
            **identity,
            "tags": copy.deepcopy(self.tags),
            "properties": {
                "desired": {
                    **copy.deepcopy(self.desired),
                    "$metadata": copy.deepcopy(self.desired_metadata),
                    "$version": self.desired_version,
                },
                "reported": {
                    **copy.deepcopy(self.reported),
                    "$metadata": copy.deepcopy(self.reported_metadata),
                    "$version": self.reported_version,
                },
            },
        }

    @classmethod
    def from_raw(cls, raw: wire.RawTwin) -> Twin:
        twin = cls._parse(raw)
        twin._raw = raw  # owned from here on; to_json hands out copies
        return twin

    @classmethod
    def _parse(cls, raw: wire.RawTwin) -> Twin:
        properties = raw.get("properties") or {}
        desired = properties.get("desired") or {}
        reported = properties.get("reported") or {}
        return cls.model_validate(
            {
                **raw,
                "tags": raw.get("tags") or {},
                "desired": _without_dollars(desired),
                "reported": _without_dollars(reported),
                "desired_version": desired.get("$version", 0),
                "reported_version": reported.get("$version", 0),
                "desired_metadata": desired.get("$metadata", {}),
                "reported_metadata": reported.get("$metadata", {}),
            }
        )


class MethodResult(_Model):
    """A direct method's outcome: the status and payload the device answered with."""

    status: int
    payload: Any = None


class JobStatistics(_Model):
    device_count: int = Field(default=0, alias="deviceCount")
    failed_count: int = Field(default=0, alias="failedCount")
    succeeded_count: int = Field(default=0, alias="succeededCount")
    running_count: int = Field(default=0, alias="runningCount")
    pending_count: int = Field(default=0, alias="pendingCount")


class Job(_Model):
    """A scheduled job (twin update or direct method over a query condition)."""

    job_id: str = Field(alias="jobId")
    type: str
    status: str
    query_condition: str | None = Field(default=None, alias="queryCondition")
    created_time: datetime | None = Field(default=None, alias="createdTime")
    start_time: datetime | None = Field(default=None, alias="startTime")
    end_time: datetime | None = Field(default=None, alias="endTime")
    max_execution_time_in_seconds: int | None = Field(
        default=None, alias="maxExecutionTimeInSeconds"
    )
    failure_reason: str | None = Field(default=None, alias="failureReason")
    status_message: str | None = Field(default=None, alias="statusMessage")
    statistics: JobStatistics = Field(default_factory=JobStatistics, alias="deviceJobStatistics")

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class ImportExportJob(_Model):
    """An import or export job (`JobProperties`): identities and twins in bulk through blob
    containers. The container URLs are secrets (anyone holding one can use it)."""

    job_id: str = Field(alias="jobId")
    type: str
    status: str
    progress: int = 0
    start_time: datetime | None = Field(default=None, alias="startTimeUtc")
    end_time: datetime | None = Field(default=None, alias="endTimeUtc")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    output_blob_name: str | None = Field(default=None, alias="outputBlobName")
    input_blob_name: str | None = Field(default=None, alias="inputBlobName")

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class DeviceJobResult(_Model):
    """One device's part in a job, from `SELECT * FROM devices.jobs`."""

    device_id: str = Field(alias="deviceId")
    job_id: str = Field(alias="jobId")
    job_type: str | None = Field(default=None, alias="jobType")
    status: str
    start_time: datetime | None = Field(default=None, alias="startTimeUtc")
    end_time: datetime | None = Field(default=None, alias="endTimeUtc")
    outcome: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def method_result(self) -> MethodResult | None:
        response = self.outcome.get("deviceMethodResponse")
        return MethodResult.model_validate(response) if response else None


class Configuration(_Model):
    """An automatic device configuration and its metrics."""

    id: str
    target_condition: str = Field(default="", alias="targetCondition")
    priority: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    device_content: dict[str, Any] = Field(default_factory=dict)
    metric_queries: dict[str, str] = Field(default_factory=dict)
    metric_results: dict[str, int] = Field(default_factory=dict)
    system_metrics: dict[str, int] = Field(default_factory=dict)
    etag: str | None = None
    created_time: datetime | None = Field(default=None, alias="createdTimeUtc")
    last_updated_time: datetime | None = Field(default=None, alias="lastUpdatedTimeUtc")

    @classmethod
    def from_raw(cls, raw: wire.RawConfiguration) -> Configuration:
        metrics = raw.get("metrics") or {}
        system = raw.get("systemMetrics") or {}
        return cls.model_validate(
            {
                **raw,
                "labels": raw.get("labels") or {},
                "device_content": (raw.get("content") or {}).get("deviceContent") or {},
                "metric_queries": metrics.get("queries") or {},
                "metric_results": metrics.get("results") or {},
                "system_metrics": system.get("results") or {},
            }
        )

    @property
    def targeted_count(self) -> int:
        return self.system_metrics.get("targetedCount", 0)

    @property
    def applied_count(self) -> int:
        return self.system_metrics.get("appliedCount", 0)


class BulkFailure(_Model):
    """One entry of a bulk registry operation that failed (or warned), and why."""

    device_id: str | None = Field(default=None, alias="deviceId")
    error_code: str = Field(default="", alias="errorCode")
    error_status: str = Field(default="", alias="errorStatus")
    operation: str | None = None


class BulkResult(_Model):
    """What a bulk registry operation (`POST /devices`, up to 100 devices) answered: every entry
    not in `errors` was applied; `warnings` name devices registered whose twin part was not."""

    is_successful: bool = Field(alias="isSuccessful")
    errors: tuple[BulkFailure, ...] = ()
    warnings: tuple[BulkFailure, ...] = ()

    @classmethod
    def from_raw(cls, raw: wire.RawBulkResult) -> BulkResult:
        warnings = [
            {"deviceId": w.get("deviceId"), "errorCode": w.get("warningCode", ""),
             "errorStatus": w.get("warningStatus", "")}
            for w in raw.get("warnings") or []
        ]  # fmt: skip
        return cls.model_validate({**raw, "errors": raw.get("errors") or [], "warnings": warnings})
