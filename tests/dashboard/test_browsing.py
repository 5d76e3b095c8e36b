"""The read-only pages in a real browser: overview, query explorer, XSS, metrics."""

from __future__ import annotations

import csv
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboard.conftest import XSS, Site, eventually, screenshot

# one worker runs the whole module, so it starts one hub, dashboard and browser (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("dashboard-browsing")

DRAWN = """canvas => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
    return painted;
}"""
# Every chart on the page has painted pixels (checked in one go: live pages swap their charts).
ALL_DRAWN = f"""() => {{
    const painted = {DRAWN};
    const canvases = [...document.querySelectorAll('canvas[data-chart]')];
    return canvases.length > 0
        && canvases.every(c => c.dataset.drawn === 'true' && painted(c) > 100);
}}"""


def _counts(page: Page, path: str) -> dict[str, int]:
    rows = page.locator(f"section[data-path='{path}'] table.counts tbody tr")
    return {
        rows.nth(i).locator("td").nth(0).inner_text(): int(
            rows.nth(i).locator("td").nth(1).inner_text()
        )
        for i in range(rows.count())
    }


def test_overview_counts_and_charts(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url + "/")
    expect(page.locator("h1")).to_have_text("Fleet overview")
    assert _counts(page, "connectionState") == {"Connected": 4, "Disconnected": 3}
    assert _counts(page, "status") == {"enabled": 6, "disabled": 1}
    assert _counts(page, "properties.reported.firmware.currentFwVersion") == {
        "1.0.0": 3,
        "(none)": 3,
        "2.0.0": 1,
    }
    expect(page.locator("canvas[data-chart]")).to_have_count(5)
    page.wait_for_function(ALL_DRAWN)
    screenshot(page, tmp_path / "overview.png")


def test_overview_refreshes_itself(site: Site, page: Page) -> None:
    page.goto(site.url + "/")
    page.evaluate("window.__same_page = true")
    site.fleet.devices.create("late-0")
    try:
        expect(page.locator("section[data-path='connectionState'] table.counts")).to_contain_text(
            "4", timeout=10_000
        )
        expect(
            page.locator("section[data-path='connectionState'] tbody tr", has_text="Disconnected")
        ).to_contain_text("4", timeout=10_000)
        assert page.evaluate("window.__same_page") is True  # updated without a reload
    finally:
        site.fleet.devices.delete("late-0")


def test_query_explorer_pages_sorts_and_downloads(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url + "/query")
    page.fill("#q", "SELECT deviceId, tags.kind AS kind FROM devices WHERE tags.kind = 'sensor'")
    page.fill("#size", "3")
    page.click("text=Run")
    first = page.locator("table.results tbody tr")
    expect(first).to_have_count(3)
    seen = set(first.locator("td:first-child").all_inner_texts())
    screenshot(page, tmp_path / "query.png")
    page.click("a.next-page")
    expect(page.locator("table.results tbody tr")).to_have_count(1)
    seen |= set(page.locator("table.results tbody td:first-child").all_inner_texts())
    assert seen == {"sensor-0", "sensor-1", "sensor-2", "sensor-3"}
    expect(page.locator("a.next-page")).to_have_count(0)
    page.click("text=First page")
    page.click("th >> text=deviceId")
    page.click("th >> text=deviceId")  # a second click sorts descending
    ids = page.locator("table.results tbody td:first-child").all_inner_texts()
    assert ids == sorted(ids, reverse=True)
    assert "sort=deviceId" in page.url  # the URL can be shared
    assert "dir=desc" in page.url
    with page.expect_download() as info:
        page.click("text=Download CSV")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [r["kind"] for r in rows] == ["sensor"] * 3
    assert len({r["deviceId"] for r in rows}) == 3


def test_query_syntax_error_shows_a_caret(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url + "/query")
    page.fill("#q", "SELECT *\nFROM devices\nWHERE tags.kind = = 'sensor'")
    page.click("text=Run")
    error = page.locator(".query-error")
    expect(error).to_contain_text("line 3, column 19")
    expect(error.locator(".line-text")).to_have_text("WHERE tags.kind = = 'sensor'")
    expect(error.locator(".caret-mark")).to_have_text(" " * 18 + "^")
    screenshot(page, tmp_path / "query-error.png")


def test_group_by_is_drawn_as_a_bar_chart(site: Site, page: Page) -> None:
    page.goto(site.url + "/query?q=SELECT+tags.kind,+COUNT()+AS+n+FROM+devices+GROUP+BY+tags.kind")
    canvas = page.locator("canvas[data-chart]")
    page.wait_for_function(ALL_DRAWN)
    assert canvas.evaluate("c => Chart.getChart(c).data.labels.slice().sort()") == [
        "idle",
        "sensor",
    ]


def test_everything_shown_is_escaped(site: Site, page: Page) -> None:
    page.goto(site.url + "/devices/xss-0")
    expect(page.locator("pre.tags")).to_contain_text(XSS.replace('"', '\\"'))
    expect(page.locator("#desired")).to_contain_text("<script>")
    page.goto(
        site.url + "/query?q=SELECT+deviceId,+tags.note+AS+note+FROM+devices+WHERE+tags.note+!=+''"
    )
    expect(page.locator("table.results")).to_contain_text("<script>window.__xss = 1</script>")
    page.goto(
        site.url + "/query?q=" + requests.utils.quote("SELECT <script>window.__xss=3</script>")
    )
    expect(page.locator(".query-error")).to_contain_text("line 1")
    assert page.evaluate("window.__xss") is None
    assert page.locator("script:not([src])").count() == 0


def test_metrics_are_prometheus_text(site: Site, page: Page) -> None:
    text = (
        "SELECT properties.reported.firmware.currentFwVersion AS version, COUNT() AS n "
        "FROM devices WHERE tags.kind = 'sensor' "
        "GROUP BY properties.reported.firmware.currentFwVersion"
    )
    page.goto(site.url + "/query?q=" + requests.utils.quote(text))
    page.fill("#save-name", "firmware")
    page.check("input[name=metric]")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("aside.saved")).to_contain_text("firmware")
    body = requests.get(site.url + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = {s.labels["version"]: s.value for s in families["twinfleet_query_firmware"].samples}
    assert samples == {"1.0.0": 3, "2.0.0": 1}
    assert families["twinfleet_dashboard_hub_queries"].samples[0].value > 0


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, name="webhook")
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cr3t-path", _Webhook.received
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_an_alert_fires_on_every_page_and_calls_its_webhook(
    site: Site, page: Page, webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = webhook
    page.goto(
        site.url
        + "/query?q="
        + requests.utils.quote("SELECT COUNT() AS n FROM devices WHERE status = 'disabled'")
    )
    page.fill("#save-name", "disabled")
    page.get_by_role("button", name="Save", exact=True).click()
    page.goto(site.url + "/alerts")
    page.fill("#rule-name", "someDisabled")
    page.select_option("#rule-query", "disabled")
    page.select_option("#rule-op", ">")
    page.fill("#rule-threshold", "0")
    page.fill("#rule-for", "0")
    page.fill("#rule-webhook", url)
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("tr[data-rule=someDisabled] .alert-state")).to_have_text(
        "firing", timeout=10_000
    )
    assert "s3cr3t-path" not in page.content()  # only the webhook's host is shown
    for path in ("/", "/campaigns", "/devices/idle-0"):
        page.goto(site.url + path)
        expect(page.locator(".alerts-firing")).to_contain_text("someDisabled")
    screenshot(page, tmp_path / "alert.png")
    page.click(".alerts-firing a[data-alert=someDisabled]")
    expect(page.locator("table.results")).to_contain_text("1")  # the query behind it
    eventually(lambda: received, what="the webhook's call")
    assert received[0] == {
        "rule": "someDisabled",
        "state": "firing",
        "value": 1.0,
        "condition": "> 0",
        "query": "disabled",
    }
    body = requests.get(site.url + "/metrics", timeout=10).text
    firing = {
        s.labels["rule"]: s.value
        for f in text_string_to_metric_families(body)
        if f.name == "twinfleet_alert_firing"
        for s in f.samples
    }
    assert firing == {"someDisabled": 1}
