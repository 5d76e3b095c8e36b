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
