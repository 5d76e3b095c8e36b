"""Cursor paging of twin queries: a twin present for the whole read comes back exactly once, in
device-id order, while twins are added, removed and changed between pages; TOP holds across
pages; a forged or garbage continuation token gets a 400 with IoT Hub's error body."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import requests

from local_hub import LocalHub, tokens


def _query(hub: LocalHub, text: str, page: int, token: str | None = None) -> requests.Response:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    sas = tokens.make_sas_token(
        parts["HostName"], base64.b64decode(parts["SharedAccessKey"]), int(time.time()) + 600
    )
    headers = {"Authorization": f"{sas}&skn=iothubowner", "x-ms-max-item-count": str(page)}
    if token is not None:
        headers["x-ms-continuation"] = token
    return requests.post(
        f"https://{hub.host}:{hub.service_port}/devices/query",
        params={"api-version": "2021-04-12"}, json={"query": text}, headers=headers,
        verify=hub.ca_certificate_path, timeout=30,
    )  # fmt: skip


def _create(hub: LocalHub, device_id: str, tags: dict[str, Any] | None = None) -> None:
    async def create() -> None:
        hub.server.registry.create_device({"deviceId": device_id})
        if tags:
            hub.server.registry.update_twin(device_id, {"tags": tags}, None)

    hub.call(create())


def test_paging_returns_each_lasting_twin_once_while_twins_change(hub: LocalHub) -> None:
    for i in range(0, 60, 2):
        _create(hub, f"p-{i:03d}", {"group": "a" if i % 4 else "b"})
    text = "SELECT * FROM devices"
    first = _query(hub, text, 7)
    assert first.status_code == 200
    seen = [row["deviceId"] for row in first.json()]
    token = first.headers["x-ms-continuation"]
    lasting = {f"p-{i:03d}" for i in range(0, 60, 2)}
    # Between pages: new twins (before and after the cursor), deletions, tag changes.

    async def churn() -> None:
        reg = hub.server.registry
        for i in (1, 3, 41, 59):
            reg.create_device({"deviceId": f"p-{i:03d}"})
        for victim in ("p-020", "p-050"):
            reg.delete_device(victim, None)
        for device_id in ("p-002", "p-030", "p-058"):
            reg.update_twin(device_id, {"tags": {"moved": True}}, None)

    hub.call(churn())
    lasting -= {"p-020", "p-050"}
    while token:
        page = _query(hub, text, 7, token)
        assert page.status_code == 200
        seen += [row["deviceId"] for row in page.json()]
        token = page.headers.get("x-ms-continuation")
    assert len(seen) == len(set(seen))  # nothing twice
    assert lasting <= set(seen)  # every twin present throughout, once
    assert seen == sorted(seen)
    assert "p-001" not in seen  # added behind the cursor: not part of this read
    assert "p-041" in seen  # added ahead of it: read


def test_filtered_projected_and_top_queries_page_like_one_read(hub: LocalHub) -> None:
    for i in range(25):
        _create(hub, f"q-{i:02d}", {"n": i, "odd": i % 2 == 1})
    for text, expected in (
        ("SELECT deviceId, tags.n FROM devices WHERE tags.odd = true",
         [{"deviceId": f"q-{i:02d}", "n": i} for i in range(1, 25, 2)]),
        ("SELECT TOP 5 deviceId FROM devices WHERE tags.n >= 3",
         [{"deviceId": f"q-{i:02d}"} for i in range(3, 8)]),
    ):  # fmt: skip
        rows: list[Any] = []
        token = None
        pages = 0
        while True:
            response = _query(hub, text, 2, token)
            assert response.status_code == 200
            assert response.headers["x-ms-item-type"] == "raw"
            rows += response.json()
            pages += 1
            token = response.headers.get("x-ms-continuation")
            if token is None:
                break
        assert rows == expected
        assert pages == (len(expected) + 1) // 2


def test_forged_and_garbage_tokens_are_400_with_iot_hubs_error_body(hub: LocalHub) -> None:
    _create(hub, "t-1")
    _create(hub, "t-2")
    text = "SELECT * FROM devices"
    real = _query(hub, text, 1).headers["x-ms-continuation"]
    decoded = json.loads(base64.urlsafe_b64decode(real))
    forged = [
        "not-ours", "%%%", "", "e30=",  # garbage, and {} (empty body)
        base64.urlsafe_b64encode(json.dumps({**decoded, "n": -1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({**decoded, "a": 5}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({**decoded, "h": "0" * 16}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, 2]).encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(json.dumps({"h": decoded["h"], "o": 1}).encode()).decode(),
    ]  # fmt: skip
    for token in forged:
        response = _query(hub, text, 1, token or None) if token else None
        if response is None:
            continue
        assert response.status_code == 400, token
        body = response.json()
        assert "continuation token" in body["Message"]
        assert set(body) == {"Message", "ExceptionMessage"}
    # A token of one query is refused by another.
    other = _query(hub, "SELECT deviceId FROM devices", 1, real)
    assert other.status_code == 400
