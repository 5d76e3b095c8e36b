"""Generated fleets of realistic device twins, for the demo and the benchmarks.

The twins have the shape IoT Hub returns from a twin query: identity fields, tags, desired and
reported properties with `$version` and `$metadata`. They are deterministic for a given seed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from patterns.contracts import times

__all__ = ["REGIONS", "generate_fleet", "generate_twin"]

REGIONS = {
    "eu-west": ["dublin", "amsterdam", "paris"],
    "us-east": ["boston", "atlanta", "newyork"],
    "ap-south": ["mumbai", "singapore"],
}
_MODELS = ["gw-100", "gw-200", "sensor-s1", "sensor-s2"]
_VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]
_STATUSES = ["current"] * 8 + ["downloading", "error", "rolledback"]
_CONFIG_STATUSES = ["Success"] * 6 + ["Pending", "Error"]
_EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def _stamp(rng: random.Random) -> str:
    moment = _EPOCH + timedelta(seconds=rng.randrange(0, 30 * 86400))
    return times.iso(moment.timestamp())


def _metadata(section: dict[str, Any], rng: random.Random, version: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"$lastUpdated": _stamp(rng), "$lastUpdatedVersion": version}
    for key, value in section.items():
        if isinstance(value, dict):
            meta[key] = _metadata(value, rng, version)
        else:
            meta[key] = {"$lastUpdated": _stamp(rng), "$lastUpdatedVersion": version}
    return meta


def generate_twin(index: int, rng: random.Random) -> dict[str, Any]:
    """One twin; `index` makes its device id."""
    region = rng.choice(list(REGIONS))
    model = rng.choice(_MODELS)
    current = rng.choice(_VERSIONS)
    desired_version = rng.randrange(1, 40)
    reported_version = rng.randrange(1, 400)
    frequency = rng.choice([30, 60, 300, 900])
    config_id = f"{rng.getrandbits(128):032x}"
    desired = {
        "telemetryConfig": {"configId": config_id, "sendFrequencyInSecs": frequency},
        "firmware": {
            "fwVersion": rng.choice(_VERSIONS),
            "fwPackageURI": f"https://artifacts.example/firmware/{model}/{current}.bin",
            "fwPackageCheckValue": f"{rng.getrandbits(256):064x}",
            "fwPackageSize": rng.randrange(1 << 20, 64 << 20),
        },
        "configuration": {
            "version": rng.randrange(1, 20),
            "settings": {
                "telemetryInterval": rng.choice([10, 30, 60, 300]),
                "logLevel": rng.choice(["debug", "info", "warning"]),
            },
        },
    }
    reported = {
        "telemetryConfig": {
            "configId": config_id,
            "sendFrequencyInSecs": frequency,
            "status": rng.choice(_CONFIG_STATUSES),
        },
        "connectivity": {"type": rng.choice(["wifi", "wired", "cellular"])},
        "firmware": {
            "currentFwVersion": current,
            "pendingFwVersion": "",
            "fwUpdateStatus": rng.choice(_STATUSES),
            "fwUpdateSubstatus": "",
            "lastFwUpdateStartTime": _stamp(rng),
            "lastFwUpdateEndTime": _stamp(rng),
        },
        "configuration": {"version": rng.randrange(1, 20), "status": "applied"},
        "health": {"crashCount": rng.choice([0] * 9 + [1, 2, 5]), "uptime": rng.randrange(10**6)},
        "telemetry": {"temperature": round(rng.uniform(-10, 60), 1), "battery": rng.randrange(101)},
    }
    connected = rng.random() < 0.8
    return {
        "deviceId": f"device-{index:06d}",
        "etag": f"AAAAAAAAAA{index % 10}=",
        "deviceEtag": f"{rng.getrandbits(32):08x}",
        "version": desired_version + reported_version,
        "status": "enabled" if rng.random() < 0.97 else "disabled",
        "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": "Connected" if connected else "Disconnected",
        "lastActivityTime": _stamp(rng),
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
        "tags": {
            "location": {"region": region, "city": rng.choice(REGIONS[region])},
            "model": model,
            "ring": "canary" if rng.random() < 0.05 else "main",
            "hardware": {"revision": rng.choice(["a", "b", "c"]), "serial": f"SN{index:08d}"},
            "owner": rng.choice(["fleet-ops", "lab", "pilot-customer"]),
        },
        "properties": {
            "desired": {
                **desired,
                "$metadata": _metadata(desired, rng, desired_version),
                "$version": desired_version,
            },
            "reported": {
                **reported,
                "$metadata": _metadata(reported, rng, reported_version),
                "$version": reported_version,
            },
        },
        "capabilities": {"iotEdge": False},
    }


def generate_fleet(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` twins, the same for the same seed."""
    rng = random.Random(seed)
    return [generate_twin(i, rng) for i in range(count)]
