"""SAS tokens: what both official SDKs make verifies, and every way a token can be wrong fails."""

from __future__ import annotations

import base64
import os
import time
import urllib.parse

import pytest
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.hub.sastoken import SasToken as ServiceSasToken
from hypothesis import given
from hypothesis import strategies as st

from local_hub import errors, tokens

KEY = os.urandom(32)
OTHER = os.urandom(32)
NOW = 1_800_000_000


def test_round_trip_and_secondary_key() -> None:
    token = tokens.make_sas_token("hub.local/devices/dev1", OTHER, NOW + 60)
    parsed = tokens.verify_sas_token(
        token, resource="hub.local/devices/dev1", keys=[KEY, OTHER], now=NOW
    )
    assert (parsed.resource, parsed.expiry, parsed.key_name) == (
        "hub.local/devices/dev1",
        NOW + 60,
        None,
    )


def test_the_device_sdk_token_verifies() -> None:
    key = base64.b64encode(KEY).decode()
    token = RenewableSasToken("hub.local/devices/dev1", SymmetricKeySigningMechanism(key), ttl=60)
    tokens.verify_sas_token(
        str(token), resource="hub.local/devices/dev1", keys=[KEY], now=time.time()
    )


def test_the_service_sdk_token_verifies_with_its_policy_name() -> None:
    key = base64.b64encode(KEY).decode()
    token = str(ServiceSasToken("127.0.0.5:8443", key, "iothubowner"))
    assert "sr=127.0.0.5%3A8443" in token  # quote_plus, as PROTOCOL.md 2.1 says
    parsed = tokens.verify_sas_token(
        token, resource="127.0.0.5:8443", keys=[KEY], now=time.time(), key_name="iothubowner"
    )
    assert parsed.key_name == "iothubowner"
    with pytest.raises(errors.Unauthorized, match="policy 'registryRead'"):
        tokens.verify_sas_token(
            token, resource="127.0.0.5:8443", keys=[KEY], now=time.time(), key_name="registryRead"
        )


@pytest.mark.parametrize(
    ("granted", "wanted", "covers"),
    [
        ("hub.local/devices/dev", "hub.local/devices/dev1", False),
        ("hub.local/devices/dev1", "hub.local/devices/dev", False),
        ("hub.local", "hub.local/devices/dev1", True),
        ("HUB.local/devices/dev1", "hub.local/devices/dev1", True),
        ("hub.local/devices/dev1/", "hub.local/devices/dev1", True),
        ("other.local/devices/dev1", "hub.local/devices/dev1", False),
    ],
)
def test_resource_is_matched_segment_by_segment(granted: str, wanted: str, covers: bool) -> None:
    token = tokens.make_sas_token(granted, KEY, NOW + 60)
    if covers:
        tokens.verify_sas_token(token, resource=wanted, keys=[KEY], now=NOW)
    else:
        with pytest.raises(errors.Unauthorized, match="does not cover"):
            tokens.verify_sas_token(token, resource=wanted, keys=[KEY], now=NOW)


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("Bearer abc", "not a SharedAccessSignature"),
        ("SharedAccessSignature sr=a&sig=b", "lacks one of"),
        ("SharedAccessSignature sr=a&sig=b&se=soon", "not a number"),
        ("SharedAccessSignature sr=a&sr=b&sig=c&se=1", "malformed"),
        ("SharedAccessSignature sr=a&sig", "malformed"),
    ],
)
def test_malformed_tokens_are_unauthorized(token: str, words: str) -> None:
    with pytest.raises(errors.Unauthorized, match=words):
        tokens.verify_sas_token(token, resource="a", keys=[KEY], now=NOW)


def test_expired_and_wrongly_signed_tokens_say_why_without_the_token() -> None:
    expired = tokens.make_sas_token("hub", KEY, NOW)
    with pytest.raises(errors.Unauthorized, match="expired") as caught:
        tokens.verify_sas_token(expired, resource="hub", keys=[KEY], now=NOW)
    assert tokens.parse_sas_token(expired).signature not in str(caught.value)
    forged = tokens.make_sas_token("hub", OTHER, NOW + 60)
    with pytest.raises(errors.Unauthorized, match="signature") as caught:
        tokens.verify_sas_token(forged, resource="hub", keys=[KEY], now=NOW)
    assert tokens.parse_sas_token(forged).signature not in str(caught.value)
    assert tokens.parse_sas_token(forged).signature not in repr(tokens.parse_sas_token(forged))


@given(resource=st.text(min_size=1, max_size=60), expiry=st.integers(NOW + 1, 2**40))
def test_any_resource_round_trips(resource: str, expiry: int) -> None:
    token = tokens.make_sas_token(resource, KEY, expiry)
    assert tokens.parse_sas_token(token).resource == resource
    tokens.verify_sas_token(token, resource=resource, keys=[KEY], now=NOW)


@given(flip=st.integers(0, 42))
def test_any_altered_signature_fails(flip: int) -> None:
    signature = tokens.sign(KEY, "hub%2Fdevices%2Fd", NOW + 60)
    altered = signature[:flip] + ("A" if signature[flip] != "A" else "B") + signature[flip + 1 :]
    forged = (
        f"SharedAccessSignature sr=hub%2Fdevices%2Fd&sig={urllib.parse.quote(altered, safe='')}"
        f"&se={NOW + 60}"
    )
    with pytest.raises(errors.Unauthorized, match="signature"):
        tokens.verify_sas_token(forged, resource="hub/devices/d", keys=[KEY], now=NOW)


@pytest.mark.parametrize(
    ("granted", "wanted", "covers"),
    [
        # On IoT Hub's port 443 the hub's HostName is the bare address; every spelling counts.
        ("127.0.0.9", "127.0.0.9", True),
        ("127.0.0.9:443", "127.0.0.9", True),
        ("127.0.0.9", "127.0.0.9:443", True),
        ("MyHub.Local:443/devices/dev1", "myhub.local/devices/dev1", True),
        # Any other port is part of the hub's identity.
        ("127.0.0.9", "127.0.0.9:8443", False),
        ("127.0.0.9:443", "127.0.0.9:8443", False),
        ("127.0.0.9:8443", "127.0.0.9", False),
        ("127.0.0.9:4430", "127.0.0.9", False),
        ("127.0.0.9:44", "127.0.0.9", False),
        ("127.0.0.9:8443", "127.0.0.9:8443", True),
        # The port belongs to the host only: a device id ending in ':443' is its own.
        ("hub/devices/dev:443", "hub/devices/dev", False),
    ],
)
def test_the_https_port_is_optional_in_the_host(granted: str, wanted: str, covers: bool) -> None:
    assert tokens.covers(granted, wanted) is covers


_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda octets: ".".join(map(str, octets))),
)


def _encodings(resource: str) -> list[str]:
    """`sr` as each SDK spells it: raw (Node.js's service SDK), `quote(safe="")` (Python's
    device SDK), `quote_plus` (Python's service SDK)."""
    return [resource, urllib.parse.quote(resource, safe=""), urllib.parse.quote_plus(resource)]


def _sas(resource_raw: str, key: bytes, expiry: int) -> str:
    signature = urllib.parse.quote(tokens.sign(key, resource_raw, expiry), safe="")
    return f"SharedAccessSignature sr={resource_raw}&sig={signature}&se={expiry}&skn=iothubowner"


@given(
    host=_HOSTS,
    with_port=st.booleans(),
    upper=st.lists(st.booleans(), min_size=1, max_size=80),
    encoding=st.integers(0, 2),
)
def test_a_hub_on_port_443_accepts_its_host_however_spelt(
    host: str, with_port: bool, upper: list[bool], encoding: int
) -> None:
    spelt = "".join(c.upper() if upper[i % len(upper)] else c for i, c in enumerate(host))
    resource_raw = _encodings(spelt + (":443" if with_port else ""))[encoding]
    token = _sas(resource_raw, KEY, NOW + 60)
    parsed = tokens.verify_sas_token(
        token, resource=host, keys=[KEY], now=NOW, key_name="iothubowner"
    )
    assert parsed.resource_raw == resource_raw


@given(
    host=_HOSTS,
    port=st.integers(1, 65535).filter(lambda p: p != 443),
    token_port=st.one_of(st.none(), st.integers(1, 65535)),
    encoding=st.integers(0, 2),
)
def test_a_hub_on_another_port_needs_that_port(
    host: str, port: int, token_port: int | None, encoding: int
) -> None:
    granted = host if token_port is None else f"{host}:{token_port}"
    token = _sas(_encodings(granted)[encoding], KEY, NOW + 60)
    wanted = f"{host}:{port}"
    if token_port == port:
        tokens.verify_sas_token(token, resource=wanted, keys=[KEY], now=NOW)
    else:
        with pytest.raises(errors.Unauthorized, match="does not cover"):
            tokens.verify_sas_token(token, resource=wanted, keys=[KEY], now=NOW)
