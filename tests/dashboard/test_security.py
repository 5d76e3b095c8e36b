"""Who may do what: the access token off 127.0.0.1, CSRF on every action, read-only, the Host
header on loopback, and the `twinfleet dashboard` command itself."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.conftest import allocate_loopback
from tests.dashboard.conftest import ModuleHub, dashboard_settings
from twinfleet.dashboard import DashboardServer, HubAccess, Settings

# one worker runs the whole module, so it starts one hub, dashboard and browser (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("dashboard-security")


@pytest.fixture(scope="module")
def off_loopback(module_hub: ModuleHub) -> Iterator[DashboardServer]:
    """A dashboard on an address other than 127.0.0.1, so with an access token."""
    module_hub.fleet.devices.create("plain-0")
    settings = dashboard_settings(
        module_hub.root, host=allocate_loopback(), token=Settings.new_token()
    )
    with DashboardServer(settings, HubAccess(module_hub.fleet)) as server:
        yield server


def test_off_loopback_a_token_is_required(module_hub: ModuleHub) -> None:
    with pytest.raises(ValueError, match="needs an access token"):
        dashboard_settings(module_hub.root, host=allocate_loopback())
    with pytest.raises(ValueError, match="needs an access token"):
        dashboard_settings(module_hub.root, host="0.0.0.0")
    assert dashboard_settings(module_hub.root, host="127.0.0.1").token is None


def test_the_token_opens_the_dashboard_once(off_loopback: DashboardServer, page: Page) -> None:
    url = off_loopback.url
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url + "?token=" + "x" * 32, timeout=10).status_code == 401
    assert requests.get(url + "metrics", timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {off_loopback.settings.token}"}
    assert requests.get(url + "metrics", headers=bearer, timeout=10).status_code == 200

    page.goto(off_loopback.url_with_token)
    expect(page.locator("h1")).to_have_text("Fleet overview")
    assert "token" not in page.url  # the token left the address bar for an HttpOnly cookie
    cookie = next(c for c in page.context.cookies() if c["name"] == "twinfleet_dashboard")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    page.goto(url + "devices/plain-0")
    expect(page.locator("h1")).to_contain_text("plain-0")
    assert off_loopback.settings.token not in page.content()


def test_actions_need_the_csrf_token(off_loopback: DashboardServer, page: Page) -> None:
    page.goto(off_loopback.url_with_token)
    page.goto(off_loopback.url + "devices/plain-0")
    form = {"desired": '{"a": 1}', "original": "{}", "etag": "*"}
    forged = page.request.post(off_loopback.url + "devices/plain-0/desired", form=form)
    assert forged.status == 403
    assert "CSRF" in forged.text()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    allowed = page.request.post(
        off_loopback.url + "devices/plain-0/desired", form={**form, "csrf": csrf}
    )
    assert allowed.ok
    assert page.request.get(off_loopback.url + "devices/plain-0").ok
    foreign = page.request.post(
        off_loopback.url + "devices/plain-0/desired",
        form={**form, "csrf": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403


def test_read_only_hides_and_refuses_every_action(module_hub: ModuleHub, page: Page) -> None:
    module_hub.fleet.devices.create("ro-0")
    settings = dashboard_settings(module_hub.root, read_only=True)
    with DashboardServer(settings, HubAccess(module_hub.fleet)) as server:
        for path in ("devices/ro-0", "query?q=SELECT+*+FROM+devices", "alerts", ""):
            page.goto(server.url + path)
            expect(page.locator(".badge", has_text="read-only")).to_be_visible()
            assert page.locator("form[method=post]").count() == 0, path
        csrf = server.dashboard.guard.csrf_token
        form = {"method": "reboot", "csrf": csrf, "confirmed": "yes"}
        refused = page.request.post(server.url + "devices/ro-0/invoke", form=form)
        assert refused.status == 403
        assert "read-only" in refused.text()


def test_loopback_answers_only_to_loopback_names(module_hub: ModuleHub) -> None:
    with DashboardServer(
        dashboard_settings(module_hub.root), HubAccess(module_hub.fleet)
    ) as server:
        assert requests.get(server.url + "alerts", timeout=10).status_code == 200
        rebound = requests.get(server.url + "alerts", headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 403  # a DNS-rebinding page cannot read the dashboard


def _serve(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "dashboard", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_prints_its_url_and_token(module_hub: ModuleHub) -> None:
    hub_dir = str(module_hub.hub.data_dir)
    local = _serve(["--hub-dir", hub_dir, "--store", str(module_hub.root / "cli.json")])
    remote = _serve(["--hub-dir", hub_dir, "--host", allocate_loopback(), "--read-only"])
    try:
        assert local.stdout is not None
        assert remote.stdout is not None
        line = local.stdout.readline()
        assert line.startswith("twinfleet dashboard listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert requests.get(url + "alerts", timeout=10).status_code == 200
        assert remote.stdout.readline().startswith("twinfleet dashboard listening on http://127.")
        assert remote.stdout.readline().startswith("Open it with its access token:")
        with_token = remote.stdout.readline().strip()
        assert "?token=" in with_token
        assert requests.get(with_token.split("?")[0], timeout=10).status_code == 401
        assert requests.get(with_token, timeout=10).status_code == 200
    finally:
        for process in (local, remote):
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
            assert process.stderr is not None
            assert "Traceback" not in process.stderr.read()
            process.stdout.close()  # type: ignore[union-attr]
            process.stderr.close()


def test_hostile_input_gets_a_clear_answer(module_hub: ModuleHub) -> None:
    module_hub.fleet.devices.create("odd-0")
    with DashboardServer(
        dashboard_settings(module_hub.root), HubAccess(module_hub.fleet)
    ) as server:
        base = server.url
        checks = {
            "query?q=%ED%A0%80": (200, 400),  # a lone surrogate, UTF-8 encoded
            "query?q=SELECT+*+FROM+devices&after=garbage%00token": (400,),
            "query?q=SELECT+*+FROM+devices&size=100000": (400,),
            "query?q=" + "(" * 5000: (400,),
            "query.csv?q=SELECT+*+FRM+devices": (400,),
            "devices/%ED%A0%80": (404,),
            "devices/no-such-device": (404,),
            "campaigns/no_such": (404,),
            "jobs/no-such-job": (404,),
            "static/../settings.py": (404,),
        }
        for path, expected in checks.items():
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code in expected, (path, answer.status_code, answer.text[:300])
        csrf = server.dashboard.guard.csrf_token
        for form in (
            {"desired": "[" * 20_000, "original": "{}", "etag": "*", "csrf": csrf},
            {"desired": '{"a": 1e999999}', "original": "{}", "etag": "*", "csrf": csrf},
            {"desired": "{}", "original": "nope", "etag": "*", "csrf": csrf},
        ):
            answer = requests.post(base + "devices/odd-0/desired", data=form, timeout=30)
            assert answer.status_code == 400, answer.text[:300]
        too_big = requests.post(
            base + "queries", data={"text": "x" * 400_000, "csrf": csrf}, timeout=30
        )
        assert too_big.status_code == 413
