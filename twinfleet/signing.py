"""Firmware image signing, where images are built: Ed25519 keys and signatures (`cryptography`).

A signature covers `patterns.contracts.signed_statement(version, sha256, security_floor)`; a
device whose trust store holds the public key verifies it before downloading the image.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from patterns.contracts import signed_statement

__all__ = ["SignedImage", "generate_key_pair", "sign_image"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SignedImage:
    """An image's firmware fields, signed: what goes in desired `firmware` beside its URL."""

    version: str
    sha256: str
    size: int
    signature: str
    security_floor: str | None

    def fields(self) -> dict[str, object]:
        """The desired `firmware` properties for this image (camelCase, as the contract has)."""
        fields: dict[str, object] = {
            "fwVersion": self.version,
            "fwPackageCheckValue": self.sha256,
            "fwPackageSize": self.size,
            "fwPackageSignature": self.signature,
        }
        if self.security_floor:
            fields["fwSecurityFloor"] = self.security_floor
        return fields


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new signing key: (private key, PKCS#8 PEM unencrypted; public key, SPKI PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def sign_image(
    image: Path, private_key_pem: bytes, version: str, security_floor: str | None = None
) -> SignedImage:
    """Sign `image` as firmware `version`.

    Raises:
        ValueError: the key is not an Ed25519 private key in PEM.
        OSError: the image cannot be read.
    """
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 private key")
    digest = hashlib.sha256()
    size = 0
    with Path(image).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    sha256 = digest.hexdigest()
    signature = key.sign(signed_statement(version, sha256, security_floor))
    return SignedImage(version, sha256, size, base64.b64encode(signature).decode(), security_floor)
