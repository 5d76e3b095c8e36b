"""SAS tokens for the services' REST APIs (IoT Hub's and DPS's share the shape)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

__all__ = ["sas_token"]


def sas_token(host_name: str, key_name: str, key: bytes, expiry: int) -> str:
    """A `SharedAccessSignature` for `host_name` signed with the policy `key_name`'s key."""
    resource = urllib.parse.quote(host_name, safe="")
    signature = hmac.new(key, f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    quoted = urllib.parse.quote(base64.b64encode(signature).decode(), safe="")
    return f"SharedAccessSignature sr={resource}&sig={quoted}&se={expiry}&skn={key_name}"
