"""Shared access signature (SAS) tokens: making and verifying them as IoT Hub does.

A token is `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<policy>]`.
The signature is HMAC-SHA256, keyed with the base64-decoded key, over the URL-encoded resource as
it stands in the token, a newline, and the expiry. The device SDK encodes `sr` with
`quote(safe="")` and the service SDK with `quote_plus`, so verification signs the raw `sr` text
and compares the decoded resource with the expected one segment by segment (`devices/dev` must
not cover `devices/dev1`).

The first segment is the hub's host name. As IoT Hub does, it is compared without regard to case,
and HTTPS's default port is optional on either side: `myhub`, `MyHub:443` and `myhub%3A443` all
name the hub served on port 443. SDKs other than Python's take `HostName` as a bare host (always
port 443), so their `sr` never carries a port; on any other port the port is part of the hub's
identity and must match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from local_hub import errors

__all__ = ["SasToken", "covers", "make_sas_token", "parse_sas_token", "sign", "verify_sas_token"]

_PREFIX = "SharedAccessSignature "
_DEFAULT_PORT_SUFFIX = ":443"


@dataclass(frozen=True)
class SasToken:
    """The fields of a SAS token. `resource_raw` is `sr` exactly as sent (still encoded)."""

    resource_raw: str
    signature: str
    expiry: int
    key_name: str | None

    @property
    def resource(self) -> str:
        return urllib.parse.unquote_plus(self.resource_raw)

    def __repr__(self) -> str:  # never show the signature
        fields = f"resource={self.resource!r}, expiry={self.expiry}, key_name={self.key_name!r}"
        return f"SasToken({fields})"


def sign(key: bytes, resource_raw: str, expiry: int) -> str:
    """The base64 HMAC-SHA256 signature over `resource_raw + "\\n" + expiry`."""
    message = f"{resource_raw}\n{expiry}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def make_sas_token(resource: str, key: bytes, expiry: int, key_name: str | None = None) -> str:
    """A SAS token for `resource` signed with `key` (raw bytes), valid until `expiry`."""
    resource_raw = urllib.parse.quote(resource, safe="")
    signature = urllib.parse.quote(sign(key, resource_raw, expiry), safe="")
    token = f"{_PREFIX}sr={resource_raw}&sig={signature}&se={expiry}"
    return token + (f"&skn={key_name}" if key_name else "")


def parse_sas_token(token: str) -> SasToken:
    """Split a token into its fields.

    Raises:
        Unauthorized: the text is not a well-formed SAS token.
    """
    if not token.startswith(_PREFIX):
        raise errors.Unauthorized("The credential is not a SharedAccessSignature token.")
    fields: dict[str, str] = {}
    for part in token[len(_PREFIX) :].split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in fields:
            raise errors.Unauthorized("The SAS token is malformed.")
        fields[name] = value
    if not {"sr", "sig", "se"} <= fields.keys():
        raise errors.Unauthorized("The SAS token lacks one of sr, sig and se.")
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise errors.Unauthorized("The SAS token's expiry (se) is not a number.") from None
    return SasToken(fields["sr"], urllib.parse.unquote(fields["sig"]), expiry, fields.get("skn"))


def _segments(resource: str) -> list[str]:
    parts = resource.strip("/").lower().split("/")
    parts[0] = parts[0].removesuffix(_DEFAULT_PORT_SUFFIX)
    return parts


def covers(granted: str, wanted: str) -> bool:
    """Whether a token for resource `granted` reaches `wanted` (both decoded).

    Segment by segment and case-insensitive; the host (first segment) matches with or without
    `:443`.
    """
    granted_parts = _segments(granted)
    return _segments(wanted)[: len(granted_parts)] == granted_parts


def verify_sas_token(
    token: str,
    *,
    resource: str,
    keys: Sequence[bytes],
    now: float,
    key_name: str | None = None,
) -> SasToken:
    """Check a token's signature, scope and expiry.

    Args:
        token: the whole token text.
        resource: what the caller wants to reach, e.g. `myhub/devices/dev1`.
        keys: the keys (raw bytes) any of which may have signed it.
        now: the current Unix time.
        key_name: the policy name the token must name (`skn`), if any.

    Raises:
        Unauthorized: any check failed; the message never includes the token.
    """
    parsed = parse_sas_token(token)
    if key_name is not None and parsed.key_name != key_name:
        raise errors.Unauthorized(f"The SAS token must be signed by policy {key_name!r}.")
    if parsed.expiry <= now:
        raise errors.Unauthorized("The SAS token has expired.")
    if not covers(parsed.resource, resource):
        raise errors.Unauthorized("The SAS token's resource (sr) does not cover this target.")
    for key in keys:
        expected = sign(key, parsed.resource_raw, parsed.expiry)
        if hmac.compare_digest(expected.encode(), parsed.signature.encode()):
            return parsed
    raise errors.Unauthorized("The SAS token's signature does not match the key.")
