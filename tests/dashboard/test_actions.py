"""Actions in a real browser: a direct method answered by a running agent, desired properties
edited under the etag (and a 412 shown as a conflict), a campaign steered while it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Group, Rollout
from tests.dashboard.conftest import Site, eventually, screenshot
from twin_manager import PreconditionFailed

# one worker runs the whole module, so it starts one hub, dashboard and browser (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("dashboard-actions")


def _confirm(page: Page, question: str) -> None:
    expect(page.locator(".confirm .question")).to_contain_text(question)
    page.get_by_role("button", name="Yes, do it").click()


def test_reboot_is_confirmed_then_answered_by_the_agent(
    site: Site, page: Page, tmp_path: Path
) -> None:
    page.goto(site.url + "/devices/sensor-3")
    expect(page.locator(".connection-state")).to_have_text("Connected")
    expect(page.locator("pre.reported")).to_contain_text('"currentFwVersion": "2.0.0"')
    page.fill("#method", "reboot")
    page.get_by_role("button", name="Invoke…").click()
    _confirm(page, "Invoke 'reboot' on device 'sensor-3'?")
    expect(page.locator(".method-status")).to_have_text("200")
    screenshot(page, tmp_path / "device.png")
    eventually(lambda: "reboot" in site.fleet.twins.get("sensor-3").reported, what="lastReboot")
    page.reload()
    expect(page.locator("pre.reported")).to_contain_text("lastReboot")


def test_desired_edit_and_a_conflict(site: Site, page: Page) -> None:
    page.goto(site.url + "/devices/idle-0")
    page.fill("#desired", '{"telemetryInterval": 30}')
    page.get_by_role("button", name="Save desired properties").click()
    expect(page.locator(".notice")).to_have_text("Desired properties updated.")
    assert site.fleet.twins.get("idle-0").desired == {"telemetryInterval": 30}

    page.fill("#desired", '{"telemetryInterval": 45}')  # the page holds the twin's etag now
    site.fleet.twins.update_desired("idle-0", {"owner": "someone else"})  # ... which goes stale
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save desired properties").click()
    assert answer.value.status == 409
    expect(page.locator(".conflict")).to_contain_text("Conflict: the twin changed")
    expect(page.locator("#desired")).to_have_value('{"telemetryInterval": 45}')  # kept to retry
    assert site.fleet.twins.get("idle-0").desired == {
        "telemetryInterval": 30,
        "owner": "someone else",
    }


@pytest.fixture
def controller(site: Site) -> Iterator[Campaign]:
    """A campaign over the sensors, ticked once (one device admitted); `start()` runs it."""
    spec = CampaignSpec(
        id="cfg_1",
        pattern=ConfigurationChange(version=1, settings={"a": 1}),
        target="tags.kind = 'sensor'",
        rollout=Rollout(per_minute=600),
    )
    campaign = Campaign.create(site.fleet, spec)
    campaign.tick()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                campaign.tick()
            except PreconditionFailed:
                pass  # the dashboard steered the campaign during this tick: tick again
            stop.wait(0.2)

    thread = threading.Thread(target=loop, name="campaign-controller")
    campaign.start = thread.start  # type: ignore[attr-defined]
    yield campaign
    stop.set()
    if thread.is_alive():
        thread.join(30)


def test_a_campaign_page_updates_live_and_steers(
    site: Site, page: Page, controller: Campaign, tmp_path: Path
) -> None:
    page.goto(site.url + "/campaigns/cfg_1")
    expect(page.locator("#campaign-status")).to_have_text("running")
    page.get_by_role("button", name="Pause…").click()
    _confirm(page, "Pause campaign 'cfg_1'?")
    expect(page.locator("#campaign-status")).to_have_text("paused")
    assert Campaign.load(site.fleet, "cfg_1").record.status == "paused"
    controller.start()  # type: ignore[attr-defined]
    page.evaluate("window.__same_page = true")
    page.get_by_role("button", name="Resume…").click()
    _confirm(page, "Resume campaign 'cfg_1'?")
    expect(page.locator("#campaign-status")).to_have_text("running")
    page.evaluate("window.__same_page = true")
    expect(page.locator("#campaign-status")).to_have_text("completed", timeout=60_000)
    assert page.evaluate("window.__same_page") is True  # it updated without a reload
    expect(page.locator("tr[data-state=succeeded] td")).to_have_text("4")
    expect(page.locator(".log")).to_contain_text("paused: paused by the operator")
    page.wait_for_function(
        "() => document.querySelector('canvas[data-chart]').dataset.drawn === 'true'"
    )
    screenshot(page, tmp_path / "campaign.png")


def test_plan_then_abort_from_the_page(site: Site, page: Page, tmp_path: Path) -> None:
    spec = CampaignSpec(
        id="cfg_2",
        pattern=ConfigurationChange(version=2, settings={"b": 1}),
        target="tags.kind = 'sensor'",
        groups=(Group(name="canary", condition="tags.ring = 'canary'"),),
        rollout=Rollout(per_minute=2),
    )
    Campaign.create(site.fleet, spec)
    page.goto(site.url + "/campaigns/cfg_2/plan")
    waves = page.locator("table.waves tbody tr")
    expect(waves).to_have_count(2)
    expect(waves.nth(0)).to_contain_text("canary")
    expect(waves.nth(1)).to_contain_text("rest")
    expect(page.locator("table.planned tbody tr")).to_have_count(4)
    screenshot(page, tmp_path / "plan.png")
    page.get_by_role("link", name="cfg_2").click()
    expect(page.locator("#campaign-status")).to_have_text("created")
    page.get_by_role("button", name="Abort…").click()
    _confirm(page, "Abort campaign 'cfg_2'?")
    expect(page.locator("#campaign-status")).to_have_text("aborted")
    expect(page.locator(".actions button")).to_have_count(0)  # nothing left to steer
    page.goto(site.url + "/campaigns")
    expect(page.locator("table.campaign-list tr", has_text="cfg_2")).to_contain_text("aborted")
    screenshot(page, tmp_path / "campaigns.png")


def test_jobs_and_their_device_results(site: Site, page: Page, tmp_path: Path) -> None:
    job = site.fleet.jobs.schedule_twin_update(
        "tags.kind = 'idle'", tags={"audited": True}, job_id="audit-1"
    )
    site.fleet.jobs.wait(job.job_id, 30)
    page.goto(site.url + "/jobs")
    row = page.locator("table.jobs tr", has_text="audit-1")
    expect(row).to_contain_text("completed")
    screenshot(page, tmp_path / "jobs.png")
    row.get_by_role("link", name="audit-1").click()
    results = page.locator("table.job-results tbody tr")
    expect(results).to_have_count(3)
    assert set(results.locator("td:first-child").all_inner_texts()) == {"idle-0", "idle-1", "xss-0"}
    screenshot(page, tmp_path / "job.png")


def test_readable_at_phone_width(site: Site, page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/query?q=SELECT+*+FROM+devices", "/devices/sensor-0", "/campaigns"):
        page.goto(site.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, path
    page.keyboard.press("Tab")  # the first stop is the skip link, then the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
