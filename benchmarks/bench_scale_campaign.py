"""A firmware campaign over lightweight simulated devices: how fast a fleet converges, and whether
the controller's hub queries per tick grow with the fleet.

The devices are `twinfleet fleet simulate --lightweight` devices (raw MQTT over TLS, following
the twin contract) in a process of their own; the hub is `twinfleet hub serve` in another; the
campaign controller (`Campaign.tick` over twin_manager and the service SDK) runs here with no
rate limit. The figure is devices converged per second, from the campaign's creation to its
completion. The anchor for queries per tick is the same campaign over a fleet a tenth the size,
in the same run: "independent of fleet size" means about the same number.

`BENCH_LIGHT_DEVICES` sets the fleet (default 100,000, the issue's goal). Every connection is an
open file in the hub and in the devices' process: a fleet larger than the open-file limit allows
runs at the largest size that fits, and the row says so.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _results
from benchmarks._hubs import hub_process
from benchmarks._scale import fill_hub, raise_fd_limit
from patterns.campaigns import Campaign, CampaignSpec, FirmwareUpdate, Rollout
from twin_manager import TwinManager

WANTED = int(os.environ.get("BENCH_LIGHT_DEVICES", "100000"))
HOST = "127.0.0.208"
SOURCES = [f"127.0.13.{n}" for n in range(1, 9)]
_FILES_SPARE = 2_000  # open files the hub and the devices' process need besides connections


def _devices(info: dict[str, Any], keys: dict[str, str], ready: Any, stop: Any) -> None:
    import asyncio

    from twinfleet import light_devices

    strings = [
        f"HostName={info['deviceHostName']};DeviceId={device_id};SharedAccessKey={key};"
        f"GatewayHostName={HOST}"
        for device_id, key in keys.items()
    ]
    fleet = light_devices.LightFleet(strings, info["caCertificatePath"], sources=SOURCES)

    async def main() -> None:
        task = asyncio.create_task(fleet.run(on_ready=ready.set))
        while not stop.is_set():
            await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def _campaign(count: int) -> tuple[float, list[int], int]:
    """(seconds to converge, hub queries per tick, devices succeeded) for `count` devices."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "hub"
        data_dir.mkdir()
        started = time.perf_counter()
        keys = fill_hub(data_dir, count, prefix="l", tags={i: {"kind": "sensor"} for i in
                                                            range(count)})  # fmt: skip
        print(f"   {count:,} devices registered in {time.perf_counter() - started:.0f} s",
              flush=True)  # fmt: skip
        with hub_process(data_dir, HOST) as (info, _pid):
            context = multiprocessing.get_context("fork")
            ready, stop = context.Event(), context.Event()
            devices = context.Process(target=_devices, args=(info, keys, ready, stop))
            started = time.perf_counter()
            devices.start()
            try:
                if not ready.wait(max(120.0, count / 15)):  # about 45 TLS handshakes a second here
                    raise RuntimeError("the lightweight devices did not all connect")
                print(f"   {count:,} lightweight devices connected in "
                      f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
                return _converge(info, count)
            finally:
                stop.set()
                devices.join(120)
                if devices.is_alive():
                    devices.kill()
                    devices.join()


def _converge(info: dict[str, Any], count: int) -> tuple[float, list[int], int]:
    with TwinManager.from_connection_string(
        info["serviceConnectionString"], ca_file=info["caCertificatePath"]
    ) as fleet:
        calls: collections.Counter[str] = collections.Counter()
        page = fleet._sdk.query_page

        def counted(text: str, token: str | None, page_size: int) -> Any:
            calls["page"] += 1
            calls["query"] += token is None  # a query's first page; later pages continue it
            return page(text, token, page_size)

        fleet._sdk.query_page = counted  # type: ignore[method-assign]
        image = b"lightweight image" * 64
        spec = CampaignSpec(
            id="scale",
            pattern=FirmwareUpdate(
                version="2.0.0",
                package_uri=f"https://{HOST}/artifacts/fw-2.bin",
                check_value=hashlib.sha256(image).hexdigest(),
                package_size=len(image),
            ),
            target="tags.kind = 'sensor'",
            rollout=Rollout(per_minute=1e9),
        )
        started = time.perf_counter()
        campaign = Campaign.create(fleet, spec)
        per_tick: list[int] = []
        while True:
            before = calls["query"]
            status = campaign.tick()
            per_tick.append(calls["query"] - before)
            if status.status in ("completed", "aborted", "cancelled"):
                break
        elapsed = time.perf_counter() - started
    succeeded = int(status.counts.get("succeeded", 0))
    print(f"   {succeeded:,} of {count:,} converged in {elapsed:.1f} s ({count / elapsed:,.0f} "
          f"devices/s), {len(per_tick)} ticks; hub queries per tick: mean "
          f"{sum(per_tick) / len(per_tick):.1f}, max {max(per_tick)} ({calls['page']:,} pages "
          "in all)", flush=True)  # fmt: skip
    return elapsed, per_tick, succeeded


def main() -> None:
    files = raise_fd_limit()
    count = min(WANTED, files - _FILES_SPARE)
    limited = count < WANTED
    if limited:
        print(f"   {WANTED:,} devices need {WANTED:,} open files in each process; this machine "
              f"allows {files:,}: running {count:,}", flush=True)  # fmt: skip
    small = max(100, count // 10)
    _, small_ticks, _ = _campaign(small)
    elapsed, ticks, succeeded = _campaign(count)
    rate = count / elapsed
    note = (f"fleet limited to {count:,} (of {WANTED:,}) by the open-file limit {files:,}"
            if limited else "")  # fmt: skip
    _results.record(_results.Row(
        measure=f"campaign over {count:,} lightweight devices (converged)", value=rate,
        unit="devices/s", anchor="", anchor_value=None, goal=">= 1,000 devices/s",
        met=rate >= 1000 and succeeded == count, note=note,
    ))  # fmt: skip
    mean, small_mean = sum(ticks) / len(ticks), sum(small_ticks) / len(small_ticks)
    _results.record(_results.Row(
        measure=f"hub queries per controller tick, {count:,} devices", value=mean,
        unit="queries", anchor=f"the same campaign over {small:,} devices", anchor_value=small_mean,
        goal="independent of fleet size (<= 1.5x)", met=mean <= 1.5 * small_mean, note=note,
    ))  # fmt: skip
