"""Group commit: the writes of one loop turn go to SQLite together, each is acknowledged only
once committed, and a hub killed with SIGKILL mid-stream keeps every patch it acknowledged.
A twin is stored in sections, so a reported patch rewrites nothing else; a version-1 file (one
JSON document per twin) is upgraded when opened."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from local_hub import registry, store, tokens
from local_hub.mqtt import codec
from twin_manager import RetryPolicy, TwinManager

DEVICES = 12
WINDOW = 6


def _fill(data_dir: Path, count: int) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = store.Store(data_dir / "hub.db")
    reg = registry.Registry(db, clock=time.time)
    keys = {}
    for i in range(count):
        identity = reg.create_device({"deviceId": f"gc-{i:02d}"})
        keys[identity["deviceId"]] = identity["authentication"]["symmetricKey"]["primaryKey"]
    db.close()
    return keys


async def _patch_until_killed(
    info: dict[str, Any], device_id: str, key: str, acked: dict[str, int], state: dict[str, Any]
) -> None:
    context = ssl.create_default_context(cafile=info["caCertificatePath"])
    host = info["gatewayHostName"]
    reader, writer = await asyncio.open_connection(host, 8883, ssl=context, server_hostname=host)
    hub = info["deviceHostName"]
    token = tokens.make_sas_token(
        f"{hub}/devices/{device_id}", base64.b64decode(key), int(time.time()) + 600
    )
    username = f"{hub}/{device_id}/?api-version=2019-10-01"
    writer.write(codec.encode(codec.Connect(device_id, 60, False, username, token.encode())))
    ack = await codec.read_packet(reader, 1 << 20)
    assert isinstance(ack, codec.ConnAck)
    assert ack.return_code == 0
    sent = 0

    def send() -> None:
        nonlocal sent
        sent += 1
        body = json.dumps({"seq": sent}).encode()
        topic = f"$iothub/twin/PATCH/properties/reported/?$rid={sent}"
        writer.write(codec.encode(codec.Publish(topic, body, qos=1, packet_id=sent)))

    for _ in range(WINDOW):
        send()
    try:
        while True:
            packet = await codec.read_packet(reader, 1 << 20)
            if packet is None:
                return
            if isinstance(packet, codec.Publish):
                assert packet.topic.startswith("$iothub/twin/res/204/"), packet.topic
                rid = int(packet.topic.split("$rid=")[1].split("&")[0])
                acked[device_id] = max(acked.get(device_id, 0), rid)
                state["acked"] += 1
                if state["acked"] >= state["kill_at"] and not state["killed"]:
                    state["in_flight"] = sum(state["sent"].values()) - state["acked"]
                    os.kill(state["pid"], signal.SIGKILL)
                    state["killed"] = True
                if not state["killed"]:
                    send()
                    state["sent"][device_id] = sent
            state["sent"][device_id] = sent
    except (ConnectionError, OSError, codec.MalformedPacket):
        return
    finally:
        writer.close()


def _assert_kept(data_dir: Path, section: str, acknowledged: dict[str, int]) -> None:
    """Every device's stored `section` holds at least the last `seq` the hub acknowledged."""
    db = store.Store(data_dir / "hub.db")
    try:
        twins = {device_id: twin for device_id, _, twin, _ in db.load_devices()}
    finally:
        db.close()
    for device_id, last in acknowledged.items():
        stored = twins[device_id][section].get("seq", 0)
        assert stored >= last, f"{device_id}: acknowledged seq {last}, stored {stored}"
        assert twins[device_id][f"{section}Version"] == stored + 1


def test_group_commit_loses_no_acknowledged_patch_across_kill_9(hub_process: Any) -> None:
    keys = _fill(hub_process.data_dir, DEVICES)
    info = hub_process.start()
    acked: dict[str, int] = {}
    state: dict[str, Any] = {
        "acked": 0, "kill_at": 400, "killed": False, "pid": hub_process.process.pid,
        "sent": dict.fromkeys(keys, WINDOW), "in_flight": 0,
    }  # fmt: skip

    async def run() -> None:
        await asyncio.wait_for(
            asyncio.gather(
                *(_patch_until_killed(info, d, k, acked, state) for d, k in keys.items())
            ),
            120,
        )

    asyncio.run(run())
    hub_process.process.wait()
    assert state["killed"]
    assert state["in_flight"] > 0  # patches were on their way when the hub died
    _assert_kept(hub_process.data_dir, "reported", acked)


def test_service_twin_updates_answered_are_kept_across_kill_9(hub_process: Any) -> None:
    """Twin updates from the service SDK join the group commit too: each is answered only once
    committed, so a hub killed mid-stream keeps every update it answered."""
    keys = _fill(hub_process.data_dir, 8)
    info = hub_process.start()
    answered: dict[str, int] = {}
    lock = threading.Lock()
    total = {"answered": 0}
    killed = threading.Event()
    failures: list[Exception] = []

    def update(device_id: str) -> None:
        with TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"],
            retry=RetryPolicy(attempts=1),
        ) as fleet:  # fmt: skip
            for seq in itertools.count(1):
                try:
                    fleet.twins.update_desired(device_id, {"seq": seq})
                except Exception as exc:
                    if not killed.is_set():
                        failures.append(exc)
                    return
                with lock:
                    answered[device_id] = seq
                    total["answered"] += 1
                    if total["answered"] == 150:
                        killed.set()
                        os.kill(hub_process.process.pid, signal.SIGKILL)

    threads = [threading.Thread(target=update, args=(device_id,)) for device_id in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    hub_process.process.wait()
    assert failures == []
    assert killed.is_set()
    _assert_kept(hub_process.data_dir, "desired", answered)


def test_the_writes_of_one_loop_turn_are_one_commit_acknowledged_after_it(tmp_path: Path) -> None:
    db = store.Store(tmp_path / "hub.db")
    twin = {
        "tags": {}, "desired": {}, "desiredMeta": {}, "desiredVersion": 1, "reported": {},
        "reportedMeta": {}, "reportedVersion": 1, "version": 1, "etagCounter": 1,
    }  # fmt: skip
    for i in range(50):
        db.insert_device(f"d{i}", {"deviceId": f"d{i}"}, twin)
    before = db.batches
    seen: list[tuple[int, int]] = []

    async def run() -> None:
        done = asyncio.Event()
        for i in range(50):
            new = {**twin, "reported": {"n": i}, "reportedVersion": 2}

            def durable(i: int = i) -> None:
                # Another connection already sees the row: it is committed.
                with sqlite3.connect(tmp_path / "hub.db") as other:
                    row = other.execute(
                        "SELECT reported FROM devices WHERE device_id = ?", (f"d{i}",)
                    ).fetchone()
                other.close()
                seen.append((i, json.loads(row[0])[0]["n"]))
                if len(seen) == 50:
                    done.set()

            db.stage(db.twin_writes(f"d{i}", new, ("reported",)), durable)
        await asyncio.wait_for(done.wait(), 30)

    try:
        asyncio.run(run())
        assert db.batches - before == 1
        assert seen == [(i, i) for i in range(50)]  # in the order they were staged
    finally:
        db.close()


def test_a_reported_patch_rewrites_only_the_reported_section(tmp_path: Path) -> None:
    db = store.Store(tmp_path / "hub.db")
    reg = registry.Registry(db, clock=time.time)
    reg.create_device({"deviceId": "s1"})
    reg.update_twin("s1", {"tags": {"ring": "a"}, "properties": {"desired": {"x": 1}}}, None)
    db.executescript(
        "CREATE TABLE touched (what TEXT);"
        "CREATE TRIGGER other_sections AFTER UPDATE OF tags, desired ON devices "
        "BEGIN INSERT INTO touched VALUES ('tags or desired'); END;"
    )
    version = reg.patch_reported("s1", {"fw": "2.0"})
    assert version == 2
    assert db.execute("SELECT COUNT(*) FROM touched").fetchone()[0] == 0
    db.close()
    reopened = store.Store(tmp_path / "hub.db")
    try:
        (twin,) = [t for _, _, t, _ in reopened.load_devices()]
    finally:
        reopened.close()
    assert twin["tags"] == {"ring": "a"}
    assert twin["desired"] == {"x": 1}
    assert twin["reported"] == {"fw": "2.0"}
    assert twin["reportedVersion"] == 2


def test_a_version_1_database_is_upgraded_to_twin_sections(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    twin = {
        "tags": {"ring": "b"}, "desired": {"y": 2}, "desiredMeta": {"y": {}}, "desiredVersion": 3,
        "reported": {"fw": "1.0"}, "reportedMeta": {"fw": {}}, "reportedVersion": 4,
        "version": 6, "etagCounter": 6,
    }  # fmt: skip
    with sqlite3.connect(path) as raw:
        raw.executescript(
            "CREATE TABLE devices (device_id TEXT PRIMARY KEY, identity TEXT NOT NULL, "
            "twin TEXT NOT NULL, subscriptions TEXT NOT NULL DEFAULT '{}');"
            "CREATE TABLE schema_version (version INTEGER NOT NULL);"
            "INSERT INTO schema_version VALUES (1);"
        )
        raw.execute(
            "INSERT INTO devices (device_id, identity, twin) VALUES (?, ?, ?)",
            ("old", json.dumps({"deviceId": "old"}), json.dumps(twin)),
        )
    raw.close()
    db = store.Store(path)
    try:
        assert db.schema_version == store.SCHEMA_VERSION == 2
        (loaded,) = [t for _, _, t, _ in db.load_devices()]
        assert loaded == twin
    finally:
        db.close()
