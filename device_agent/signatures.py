"""The device's trust store: the public keys whose signatures on firmware images it accepts.

A trust store is a directory of Ed25519 public keys, one per file (`*.pem`, as `twinfleet
firmware keygen` writes them and `openssl pkey -pubout` does, or `*.pub` holding the raw 32 bytes
in base64). Holding several keys is how keys roll over: ship devices trusting the old and the
new key, sign with the new one, then drop the old one from later images. An image is accepted
when any trusted key verifies its signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from device_agent import _ed25519

__all__ = ["TrustStore", "UntrustedImage"]

# DER SubjectPublicKeyInfo for Ed25519 (RFC 8410): this prefix, then the 32 key bytes.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class UntrustedImage(Exception):
    """The image's signature is missing, malformed or made by no trusted key."""


def _key_from_text(text: str, source: str) -> bytes:
    if "-----BEGIN PUBLIC KEY-----" in text:
        body = "".join(
            line for line in text.strip().splitlines() if line and not line.startswith("-----")
        )
        der = base64.b64decode(body, validate=True)
        if len(der) != 44 or not der.startswith(_SPKI_PREFIX):
            raise ValueError(f"{source} is not an Ed25519 public key")
        return der[len(_SPKI_PREFIX) :]
    raw = base64.b64decode(text.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"{source} does not hold a 32-byte Ed25519 public key")
    return raw


@dataclass(frozen=True)
class TrustStore:
    """Public keys a device trusts for firmware images.

    Attributes:
        keys: the trusted keys, by name (the file name they came from).
    """

    keys: dict[str, bytes]

    @classmethod
    def load(cls, directory: Path) -> TrustStore:
        """The keys in `directory` (`*.pem` and `*.pub`).

        Raises:
            ValueError: the directory holds no key, or a file that is not an Ed25519 key.
        """
        keys: dict[str, bytes] = {}
        for path in sorted(Path(directory).iterdir()):
            if path.suffix in (".pem", ".pub"):
                try:
                    keys[path.name] = _key_from_text(path.read_text(), str(path))
                except (binascii.Error, UnicodeDecodeError) as exc:
                    raise ValueError(f"{path} is not an Ed25519 public key: {exc}") from None
        if not keys:
            raise ValueError(f"the trust store {directory} holds no *.pem or *.pub key")
        return cls(keys)

    def check(self, statement: bytes, signature: str | None) -> str:
        """The name of the trusted key whose signature `signature` is over `statement`.

        Raises:
            UntrustedImage: naming why (unsigned, malformed, or signed by no trusted key).
        """
        if not signature:
            raise UntrustedImage(
                "the image is not signed (no fwPackageSignature); this device installs only "
                "images signed by a key in its trust store"
            )
        try:
            raw = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 64:
            raise UntrustedImage("fwPackageSignature is not a base64 Ed25519 signature")
        for name, key in self.keys.items():
            if _ed25519.verify(key, statement, raw):
                return name
        raise UntrustedImage(
            f"the image's signature does not verify with any of the {len(self.keys)} trusted "
            "keys (a different key, or a version, checksum or security floor other than signed)"
        )
