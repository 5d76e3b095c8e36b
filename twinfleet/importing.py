"""Importing a device file into a hub: identities through the bulk registry API, 100 devices a
request, then their tags and desired properties the same way (`updateTwin` entries).

Re-running an import is safe and resumes it: a device that already exists is left alone and
compared with its row (status, tags, desired properties); the report names every one that
differs. Nothing half-done goes unreported: a device registered whose twin part was then refused
is reported as such, by line, and a row that could not be read is reported by its line and never
stops the rows after it. Keys are sent when the row gives them and never appear in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import queries
from twin_manager import TwinManager, models
from twinfleet.devicefiles import BadRow, DeviceRow

__all__ = ["BATCH", "ImportReport", "import_rows"]

BATCH = 100


@dataclass
class ImportReport:
    """What an import did, row by row where something needs a word.

    Attributes:
        created: devices registered (with their tags and desired properties).
        unchanged: devices that already existed just as their rows say.
        differing: (line, device id, what differs) of devices that exist otherwise.
        failed: (line, device id or None, why) of rows not imported at all.
        partial: (line, device id, why) of devices registered whose tags or desired
            properties were refused.
    """

    created: int = 0
    unchanged: int = 0
    differing: list[tuple[int, str, str]] = field(default_factory=list)
    failed: list[tuple[int, str | None, str]] = field(default_factory=list)
    partial: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every row is in the hub as written (nothing failed, partial or differing)."""
        return not (self.failed or self.partial or self.differing)

    def lines(self) -> Iterator[str]:
        """The report as sentences, one a line, in file order."""
        notes: list[tuple[int, str]] = [
            *((line, f"line {line}: {device or 'a row'} was not imported: {why}")
              for line, device, why in self.failed),
            *((line, f"line {line}: {device} was registered, but {why}")
              for line, device, why in self.partial),
            *((line, f"line {line}: {device} exists and differs ({what}); left as it is")
              for line, device, what in self.differing),
        ]  # fmt: skip
        for _, text in sorted(notes):
            yield text
        yield (f"{self.created} created, {self.unchanged} already there, "
               f"{len(self.differing)} differing, {len(self.partial)} partly imported, "
               f"{len(self.failed)} not imported")  # fmt: skip


def _chunks(rows: Iterable[DeviceRow | BadRow], report: ImportReport) -> Iterator[list[DeviceRow]]:
    batch: list[DeviceRow] = []
    for row in rows:
        if isinstance(row, BadRow):
            report.failed.append((row.line, row.device_id, row.message))
            continue
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _identity(row: DeviceRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": row.device_id, "importMode": "create", "status": row.status}
    if row.primary_key or row.secondary_key:
        entry["authentication"] = {"type": "sas", "symmetricKey": {
            "primaryKey": row.primary_key, "secondaryKey": row.secondary_key}}  # fmt: skip
    return entry


def _differences(row: DeviceRow, twin: models.Twin) -> list[str]:
    found = []
    if twin.status != row.status:
        found.append(f"status {twin.status}, not {row.status}")
    if twin.tags != row.tags:
        found.append("tags")
    if twin.desired != row.desired:
        found.append("desired")
    return found


def import_rows(
    fleet: TwinManager,
    rows: Iterable[DeviceRow | BadRow],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import device rows into `fleet`'s hub (see the module docstring).

    Args:
        fleet: the hub.
        rows: the rows, as `devicefiles.read_rows` gives them.
        on_progress: called with the number of rows dealt with after each batch.

    Raises:
        HubError: the hub could not be reached or refused a whole request (the report of what
            was done until then is lost with it: run the import again to see where it stands).
    """
    report = ImportReport()
    for batch in _chunks(rows, report):
        by_id = {row.device_id: row for row in batch}
        result = fleet.devices.bulk([_identity(row) for row in batch])
        existing: list[DeviceRow] = []
        created = dict(by_id)
        for failure in result.errors:
            row = by_id.get(failure.device_id or "")
            if row is None:  # the request was refused whole: say so for every row
                for row in batch:
                    report.failed.append((row.line, row.device_id, failure.error_status))
                created = {}
                break
            del created[row.device_id]
            if failure.error_code == "DeviceAlreadyExists":
                existing.append(row)
            else:
                report.failed.append((row.line, row.device_id, failure.error_status))
        report.created += len(created)
        twins = [
            {"id": row.device_id, "importMode": "updateTwin", "tags": row.tags,
             "properties": {"desired": row.desired}}
            for row in created.values() if row.tags or row.desired
        ]  # fmt: skip
        if twins:
            for failure in fleet.devices.bulk(twins).errors:
                row = by_id.get(failure.device_id or "")
                if row is not None:
                    why = f"its tags and desired properties were not set: {failure.error_status}"
                    report.partial.append((row.line, row.device_id, why))
        if existing:
            ids = ", ".join(queries.quote(row.device_id) for row in existing)
            found = {t.device_id: t for t in fleet.queries.twins(f"deviceId IN [{ids}]")}
            for row in existing:
                twin = found.get(row.device_id)
                what = ["deleted meanwhile"] if twin is None else _differences(row, twin)
                if what:
                    report.differing.append((row.line, row.device_id, ", ".join(what)))
                else:
                    report.unchanged += 1
        if on_progress is not None:
            on_progress(len(batch))
    return report
