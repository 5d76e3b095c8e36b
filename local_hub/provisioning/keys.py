"""Symmetric keys for provisioning: new random keys and the device keys of enrollment groups.

A device in a symmetric-key enrollment group signs with a key of its own, derived from the
group's key: base64(HMAC-SHA256(base64-decoded group key, registration id)), as
`az iot dps enrollment-group compute-device-key` computes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["decode_key", "derive_device_key", "new_key"]


def new_key() -> str:
    """A new random 256-bit key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def decode_key(key: str) -> bytes:
    """The raw bytes of a base64 key.

    Raises:
        ValueError: the text is not base64 (the message never repeats it).
    """
    try:
        return base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None


def derive_device_key(group_key: str, registration_id: str) -> str:
    """The device key of `registration_id` in a group whose key is `group_key` (base64)."""
    digest = hmac.new(decode_key(group_key), registration_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()
