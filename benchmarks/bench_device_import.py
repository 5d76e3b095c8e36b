"""Bulk device lifecycle on the local hub: `twinfleet device import` of 10,000 devices (the
bulk registry API, 100 devices a request, tags and desired properties included) against the
plain way (one create and one twin update per device, measured on a sample in the same run),
then the 10,000 round-tripped twice: `device export` read back equal to the file imported, and
an IoT Hub export job on one hub imported by an import job into a second hub.

`BENCH_IMPORT_DEVICES=500 python -m benchmarks device_import` runs it small.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _results
from benchmarks._hubs import hub_process
from twin_manager import TwinManager
from twinfleet import devicefiles, exporting, importing

DEVICES = int(os.environ.get("BENCH_IMPORT_DEVICES", "10000"))
SAMPLE = max(50, DEVICES // 20)  # devices created the plain way, one by one
HOST, OTHER_HOST = "127.0.0.213", "127.0.0.214"
GOAL_SPEEDUP = 5.0


def _rows(count: int, prefix: str) -> list[devicefiles.DeviceRow]:
    return [
        devicefiles.DeviceRow.model_validate(
            {"deviceId": f"{prefix}-{i:05d}", "tags": {"site": f"site-{i % 40}", "rack": i // 40},
             "desired": {"configuration": {"version": 1, "interval": 30 + i % 7}}}
        )
        for i in range(count)
    ]  # fmt: skip


def _fleet(info: dict[str, Any]) -> TwinManager:
    return TwinManager.from_connection_string(
        info["serviceConnectionString"], ca_file=info["caCertificatePath"]
    )


def _jobs_round_trip(fleet: TwinManager, other_info: dict[str, Any]) -> None:
    out = fleet.artifact_store().container_url("bench-export")
    started = time.perf_counter()
    job = fleet.jobs.export_devices(out, exclude_keys=False)
    fleet.jobs.wait_import_export(job.job_id, 3600, poll=0.1)
    exported = time.perf_counter() - started
    data = fleet.artifact_store().get_blob("bench-export", "devices.txt")
    other = _fleet(other_info)
    store = other.artifact_store()
    store.put_blob("bench-import", "devices.txt", data)
    url = store.container_url("bench-import")
    started = time.perf_counter()
    job = other.jobs.import_devices(url, url)
    done = other.jobs.wait_import_export(job.job_id, 3600, poll=0.1)
    imported = time.perf_counter() - started
    errors = store.get_blob("bench-import", "importErrors.log")
    same = done.status == "completed" and other.queries.count() == DEVICES and not errors
    print(f"   export job: {DEVICES:,} devices in {exported:.2f} s; import job into a second hub: "
          f"{imported:.2f} s = {DEVICES / imported:,.0f} devices/s; round trip "
          f"{'complete' if same else 'INCOMPLETE'}")  # fmt: skip
    _results.record(_results.Row(
        measure=f"import job, {DEVICES:,} devices from an export job", value=DEVICES / imported,
        unit="devices/s", anchor="export job (devices/s)", anchor_value=DEVICES / exported,
        goal="every device round-trips", met=same,
    ))  # fmt: skip


def main() -> None:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        info, _ = stack.enter_context(hub_process(tmp / "hub", HOST))
        other_info, _ = stack.enter_context(hub_process(tmp / "other", OTHER_HOST))
        fleet = _fleet(info)

        plain = _rows(SAMPLE, "plain")
        started = time.perf_counter()
        for row in plain:
            fleet.devices.create(row.device_id)
            fleet.twins.update(row.device_id, tags=row.tags, desired=row.desired)
        one_by_one = SAMPLE / (time.perf_counter() - started)

        rows = _rows(DEVICES, "bulk")
        started = time.perf_counter()
        report = importing.import_rows(fleet, rows)
        elapsed = time.perf_counter() - started
        bulk = DEVICES / elapsed
        print(f"   device import: {report.created:,} devices in {elapsed:.2f} s = {bulk:,.0f} "
              f"devices/s; one by one: {one_by_one:,.0f} devices/s ({SAMPLE} devices)")  # fmt: skip
        _results.record(_results.Row(
            measure=f"device import, {DEVICES:,} devices with twins", value=bulk,
            unit="devices/s", anchor="one create + one twin update per device",
            anchor_value=one_by_one, goal=f">= {GOAL_SPEEDUP:g}x one by one",
            met=report.clean and bulk >= GOAL_SPEEDUP * one_by_one,
        ))  # fmt: skip

        for row in plain:
            fleet.devices.delete(row.device_id)
        started = time.perf_counter()
        back = list(exporting.export_rows(fleet))
        exported = time.perf_counter() - started
        same = [r.wire() for r in back] == [r.wire() for r in rows]
        print(f"   device export: {len(back):,} devices in {exported:.2f} s; equal to the file "
              f"imported: {same}")  # fmt: skip
        _results.record(_results.Row(
            measure=f"device export, {DEVICES:,} devices", value=len(back) / exported,
            unit="devices/s", anchor="device import (devices/s)", anchor_value=bulk,
            goal="the file imported comes back equal", met=same,
        ))  # fmt: skip
        started = time.perf_counter()
        keyed = list(exporting.export_rows(fleet, include_keys=True))
        exported = time.perf_counter() - started
        complete = len(keyed) == DEVICES and all(r.primary_key for r in keyed)
        print(f"   device export --include-keys: {len(keyed):,} devices in {exported:.2f} s "
              f"(keys from one export job); every key: {complete}")  # fmt: skip
        _jobs_round_trip(fleet, other_info)
