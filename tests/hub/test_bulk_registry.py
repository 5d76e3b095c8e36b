"""Bulk registry operations (`POST /devices`) through the SDK's `bulk_create_or_update_devices`:
every import mode, etag checks, a batch with invalid devices, the 100-device limit, durability."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import (
    AuthenticationMechanism,
    ExportImportDevice,
    PropertyContainer,
    SymmetricKey,
)

from local_hub import LocalHub


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _entry(device_id: str, mode: str, **fields: Any) -> ExportImportDevice:
    return ExportImportDevice(id=device_id, import_mode=mode, **fields)


def _sas(primary: str, secondary: str | None = None) -> AuthenticationMechanism:
    return AuthenticationMechanism(
        type="sas",
        symmetric_key=SymmetricKey(primary_key=primary, secondary_key=secondary or _key()),
    )


def _manager(hub: LocalHub) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    return manager


def test_create_with_keys_tags_and_desired_then_delete(
    hub: LocalHub, registry_manager: Any, swagger: Any
) -> None:
    key = _key()
    result = registry_manager.bulk_create_or_update_devices(
        [
            _entry("bulk-a", "create", status="enabled", authentication=_sas(key)),
            _entry(
                "bulk-b",
                "create",
                status="disabled",
                tags={"ring": "canary"},
                properties=PropertyContainer(desired={"interval": 30}),
            ),
        ]
    )
    assert (result.is_successful, result.errors, result.warnings) == (True, [], [])
    swagger.check(result.serialize(), "BulkRegistryOperationResult")
    created = registry_manager.get_device("bulk-a")
    assert (created.status, created.authentication.symmetric_key.primary_key) == ("enabled", key)
    assert registry_manager.get_device("bulk-b").status == "disabled"
    twin = registry_manager.get_twin("bulk-b")
    assert (twin.tags, twin.properties.desired["interval"]) == ({"ring": "canary"}, 30)

    gone = registry_manager.bulk_create_or_update_devices(
        [_entry("bulk-a", "delete"), _entry("bulk-b", "delete")]
    )
    assert gone.is_successful
    assert registry_manager.get_devices() == []


def test_update_modes_check_the_etag_per_device(registry_manager: Any, make_device: Any) -> None:
    make_device("etag-1")
    make_device("etag-2")
    current = registry_manager.get_device("etag-1").etag
    stale = registry_manager.get_device("etag-2").etag
    registry_manager.update_device_with_sas("etag-2", stale, _key(), _key(), "enabled")
    key = _key()
    result = registry_manager.bulk_create_or_update_devices(
        [
            _entry("etag-1", "updateIfMatchETag", e_tag=current, status="disabled"),
            _entry(
                "etag-2",
                "updateIfMatchETag",
                e_tag=stale,
                status="disabled",
                authentication=_sas(key),
            ),
        ]
    )
    assert result.is_successful is False
    assert [(e.device_id, e.error_code, e.operation) for e in result.errors] == [
        ("etag-2", "PreconditionFailed", "updateIfMatchETag")
    ]
    assert "etag" in result.errors[0].error_status
    assert registry_manager.get_device("etag-1").status == "disabled"  # applied on its own
    untouched = registry_manager.get_device("etag-2")
    assert untouched.status == "enabled"
    assert untouched.authentication.symmetric_key.primary_key != key

    # "update" ignores the etag; keys not given are kept.
    before = untouched.authentication.symmetric_key.primary_key
    assert registry_manager.bulk_create_or_update_devices(
        [_entry("etag-2", "update", e_tag=stale, status="disabled")]
    ).is_successful
    after = registry_manager.get_device("etag-2")
    assert (after.status, after.authentication.symmetric_key.primary_key) == ("disabled", before)

    fresh = registry_manager.get_device("etag-1").etag
    refused = registry_manager.bulk_create_or_update_devices(
        [
            _entry("etag-1", "deleteIfMatchETag", e_tag=current),  # stale by now
            _entry("etag-2", "deleteIfMatchETag", e_tag=after.etag),
        ]
    )
    assert [(e.device_id, e.error_code) for e in refused.errors] == [
        ("etag-1", "PreconditionFailed")
    ]
    assert [d.device_id for d in registry_manager.get_devices()] == ["etag-1"]
    assert registry_manager.bulk_create_or_update_devices(
        [_entry("etag-1", "deleteIfMatchETag", e_tag=fresh)]
    ).is_successful


def test_a_batch_with_invalid_devices_applies_the_valid_ones(
    hub: LocalHub, registry_manager: Any, make_device: Any, swagger: Any
) -> None:
    make_device("exists")
    batch = [
        _entry("fine-1", "create"),
        _entry("exists", "create"),  # taken
        _entry("bad id with spaces", "create"),  # invalid id
        _entry("bad-key", "create", authentication=_sas("not base64!")),
        _entry("missing", "update", status="disabled"),  # no such device
        _entry("gone", "delete"),  # no such device
        _entry("no-mode", None),  # type: ignore[arg-type]
        _entry("fine-2", "create", tags={"a.b": 1}),  # identity fine, twin refused: a warning
    ]
    raw = registry_manager.protocol.bulk_registry.update_registry(batch, raw=True)
    assert raw.response.status_code == 400
    assert raw.response.headers["iothub-errorcode"] == "BulkRegistryOperationFailure"
    swagger.check(raw.response.json(), "BulkRegistryOperationResult")
    result = raw.output
    assert result.is_successful is False
    assert [(e.device_id, e.error_code) for e in result.errors] == [
        ("exists", "DeviceAlreadyExists"),
        ("bad id with spaces", "ArgumentInvalid"),
        ("bad-key", "ArgumentInvalid"),
        ("missing", "DeviceNotFound"),
        ("gone", "DeviceNotFound"),
        ("no-mode", "ArgumentInvalid"),
    ]
    assert all(e.error_status for e in result.errors)
    assert [(w.device_id, w.warning_code) for w in result.warnings] == [
        ("fine-2", "DeviceRegisteredWithoutTwin")
    ]
    ids = sorted(d.device_id for d in registry_manager.get_devices())
    assert ids == ["exists", "fine-1", "fine-2"]
    assert registry_manager.get_twin("fine-2").tags == {}


@pytest.mark.parametrize(
    ("entries", "code", "why"),
    [
        ([_entry(f"many-{i}", "create") for i in range(101)], "TooManyDevices", "1 to 100 devices"),
        ([], "ArgumentInvalid", "1 to 100 devices"),
        ([_entry("twice", "create"), _entry("twice", "delete")], "DeviceDefinedMultipleTimes",
         "more than once"),
    ],
)  # fmt: skip
def test_a_malformed_batch_is_refused_whole(
    registry_manager: Any, entries: list[ExportImportDevice], code: str, why: str
) -> None:
    raw = registry_manager.protocol.bulk_registry.update_registry(entries, raw=True)
    assert (raw.response.status_code, raw.response.headers["iothub-errorcode"]) == (400, code)
    result = raw.output  # the SDK decodes any 400 as a result; it says why
    assert result.is_successful is False
    assert [e.error_code for e in result.errors] == [code]
    assert why in result.errors[0].error_status
    assert registry_manager.get_devices() == []


def test_a_hundred_devices_in_one_call_survive_a_restart(
    tmp_path: Path, make_hub: Callable[..., LocalHub]
) -> None:
    first = make_hub(tmp_path / "hub")
    host = first.host
    manager = _manager(first)
    result = manager.bulk_create_or_update_devices(
        [_entry(f"d-{i:03d}", "create", tags={"n": i}) for i in range(100)]
    )
    assert result.is_successful
    del manager
    first.close()
    again = make_hub(tmp_path / "hub", host=host)
    manager = _manager(again)
    assert len(manager.get_devices()) == 100
    assert manager.get_twin("d-099").tags == {"n": 99}
    updated = manager.bulk_create_or_update_devices(
        [
            _entry(
                "d-000",
                "updateTwin",
                tags={"n": None, "m": 1},
                properties=PropertyContainer(desired={"x": 1}),
            )
        ]
    )
    assert updated.is_successful
    twin = manager.get_twin("d-000")
    assert (twin.tags, twin.properties.desired["x"]) == ({"m": 1}, 1)
    stale = manager.bulk_create_or_update_devices(
        [_entry("d-001", "updateTwinIfMatchETag", twin_etag="AAAAAAAAAAA=", tags={"m": 2})]
    )
    assert [e.error_code for e in stale.errors] == ["PreconditionFailed"]
