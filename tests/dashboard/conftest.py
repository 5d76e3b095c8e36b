"""Dashboard tests: a real LocalHub with a known fleet (real agents on simulated platforms for
some devices), the real dashboard server on its own thread, and a real headless Chromium (Debian's,
which `make test` installs) driven through Playwright. Nothing is faked.

One hub, fleet and dashboard serve a whole module, so the browser tests stay fast; tests that
change state use devices or campaigns of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from playwright.sync_api import Browser, BrowserType, Page, Playwright, expect, sync_playwright

from device_agent import SimulatedFleet
from local_hub import LocalHub
from tests.conftest import allocate_loopback
from twin_manager import TwinManager
from twinfleet.dashboard import DashboardServer, HubAccess, Settings

# A page's assertions wait up to 15 s for what they expect (Playwright's default is 5 s): each
# page load queries the hub, and the suite runs beside agents and hubs on two shared cores.
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/lib/chromium/chromium"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL: tests name the dashboard's own. (This also replaces pytest-base-url's
    fixture, a method-style session fixture that pytest now warns about.)"""


# pytest-playwright keeps one Playwright for the whole session, and its sync API leaves an event
# loop running in the worker's main thread, which breaks every later test of that worker that
# calls asyncio.run(). Here Playwright, the browser type and the browser live for one module
# and stop with it (contexts and pages stay per test, from pytest-playwright).


@pytest.fixture(scope="module")
def playwright(_pw_api_request_contexts: Any) -> Iterator[Playwright]:
    running = sync_playwright().start()
    if _pw_api_request_contexts:
        _pw_api_request_contexts.instrument(running)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return cast(BrowserType, getattr(playwright, browser_name))


@pytest.fixture(scope="module")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    return lambda **options: browser_type.launch(**{**browser_type_launch_args, **options})


@pytest.fixture(scope="module")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium by path (Playwright cannot download its own browser here)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="module")
def browser_context_args() -> dict[str, Any]:
    """Every page at 1280x800, in UTC and en-GB, so screenshots are stable."""
    return {
        "viewport": {"width": 1280, "height": 800},
        "timezone_id": "UTC",
        "locale": "en-GB",
        "accept_downloads": True,
    }


def screenshot(page: Page, path: Path, *, full_page: bool = True) -> None:
    """Save a screenshot (written here: Playwright's own `path=` writes through an executor
    thread of its session-long loop, which the thread-leak check would see as this test's)."""
    path.write_bytes(page.screenshot(full_page=full_page))


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.1)


@dataclass
class Site:
    """A hub with a known fleet and a dashboard over it."""

    hub: LocalHub
    fleet: TwinManager
    server: DashboardServer
    agents: SimulatedFleet
    root: Path

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")

    def add_agents(self, ids: list[str], **options: Any) -> None:
        for device_id in ids:
            self.agents.add(
                self.fleet.devices.connection_string(device_id),
                self.root / "devices" / device_id,
                ca_cert=self.hub.ca_certificate,
                image_ca_file=self.hub.ca_certificate_path,
                **options,
            )


# The known fleet: four sensors with agents (three on firmware 1.0.0, one on 2.0.0), two idle
# devices without agents (one disabled), and one whose tag is an XSS attempt.
SENSORS = ["sensor-0", "sensor-1", "sensor-2", "sensor-3"]
IDLE = ["idle-0", "idle-1"]


@dataclass
class ModuleHub:
    hub: LocalHub
    fleet: TwinManager
    root: Path


@pytest.fixture(scope="module")
def module_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleHub]:
    """A hub for the whole module (its own loopback address and data directory)."""
    root = tmp_path_factory.mktemp("dashboard")
    with LocalHub(root / "hub", host=allocate_loopback()) as hub:
        yield ModuleHub(hub, TwinManager.from_local_hub(hub), root)


def dashboard_settings(root: Path, **options: Any) -> Settings:
    """Settings for tests: a free port, an unlimited budget, a short TTL and quick refresh."""
    defaults: dict[str, Any] = {
        "store_path": root / "dashboard.json",
        "port": 0,
        "query_budget": 100_000,
        "cache_ttl": 0.3,
        "refresh_seconds": 0.5,
        "alert_interval": 0.5,
    }
    return Settings(**{**defaults, **options})


@pytest.fixture(scope="module")
def site(module_hub: ModuleHub) -> Iterator[Site]:
    """The known fleet on the module's hub, agents running, and a dashboard over it."""
    hub, fleet, root = module_hub.hub, module_hub.fleet, module_hub.root
    for device_id in SENSORS:
        fleet.devices.create(device_id)
        fleet.twins.update_tags(
            device_id, {"kind": "sensor", "ring": "canary" if device_id == "sensor-0" else "main"}
        )
    fleet.devices.create("idle-0")
    fleet.devices.create("idle-1", enabled=False)
    for device_id in IDLE:
        fleet.twins.update_tags(device_id, {"kind": "idle"})
    fleet.devices.create("xss-0")
    fleet.twins.update("xss-0", tags={"kind": "idle", "note": XSS}, desired={"label": XSS})
    agents = SimulatedFleet().start()
    server = DashboardServer(dashboard_settings(root), HubAccess(fleet)).start()
    site = Site(hub, fleet, server, agents, root)
    try:
        site.add_agents(SENSORS[:3])
        site.add_agents(SENSORS[3:], initial_version="2.0.0")
        eventually(
            lambda: (
                fleet.queries.count(
                    "IS_DEFINED(properties.reported.firmware.currentFwVersion) "
                    "AND connectionState = 'Connected'"
                )
                == 4
            ),
            what="four agents online and reporting",
        )
        yield site
    finally:
        server.close()
        agents.stop()
