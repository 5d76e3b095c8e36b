"""The hub's certificate authority and server certificate, made once per data directory.

The CA is strict-valid (critical BasicConstraints and KeyUsage, SubjectKeyIdentifier); the server
certificate carries a SAN for every host it serves (IP SANs for loopback addresses: the device SDK
sends no SNI for an IP and checks the address against the SAN), serverAuth EKU and the CA's key
identifier. Private keys are written 0600. A bundle of the system CAs plus the hub CA sits beside
them, for clients that take one CA file for all their HTTPS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local_hub import files

__all__ = ["CertPaths", "ensure_certificates", "issue_server_certificate", "server_ssl_context"]

_VALID_DAYS = 3650


@dataclass(frozen=True)
class CertPaths:
    """Where a hub's TLS material lives."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    bundle: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "twinfleet local hub"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files.write_atomic(path, pem, mode=0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def _make_ca(paths: CertPaths) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name("twinfleet local hub CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(paths.ca_key, key)
    files.write_atomic(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def _san(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, "localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _server_covers(paths: CertPaths, hosts: Sequence[str]) -> bool:
    if not paths.server_cert.exists() or not paths.server_key.exists():
        return False
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(name in san for name in _san(hosts))


def _make_server(paths: CertPaths, hosts: Sequence[str]) -> None:
    ca_key = _load_key(paths.ca_key)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS - 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.server_key, key)
    files.write_atomic(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def _system_bundle() -> bytes:
    candidates = [ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return Path(candidate).read_bytes()
    return b""


def ensure_certificates(directory: Path, hosts: Sequence[str]) -> CertPaths:
    """Create (first time) or reuse the CA and a server certificate covering `hosts`.

    The CA is kept for the life of the directory, so clients that trusted it keep trusting the
    hub after restarts; the server certificate is re-issued only when a new host is served.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        bundle=directory / "ca-bundle.pem",
    )
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        _make_ca(paths)
    if not _server_covers(paths, hosts):
        _make_server(paths, hosts)
    bundle = _system_bundle().rstrip(b"\n") + b"\n" + paths.ca_cert.read_bytes()
    if not paths.bundle.exists() or paths.bundle.read_bytes() != bundle:
        files.write_atomic(paths.bundle, bundle)
    return paths


def server_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """A server-side TLS context offering TLS 1.2 (the device SDK's only version) and 1.3."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths.server_cert, paths.server_key)
    return context


def issue_server_certificate(ca: CertPaths, directory: Path, hosts: Sequence[str]) -> CertPaths:
    """A server certificate for another service (a provisioning service), issued by `ca`'s CA.

    It lives in `directory` and is re-issued when it does not cover `hosts` or another CA
    signed it, so devices trust one CA for a hub and the services beside it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(
        ca_cert=ca.ca_cert,
        ca_key=ca.ca_key,
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        bundle=ca.bundle,
    )
    issuer = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes()).subject
    same_ca = paths.server_cert.exists() and (
        x509.load_pem_x509_certificate(paths.server_cert.read_bytes()).issuer == issuer
    )
    if not (same_ca and _server_covers(paths, hosts)):
        _make_server(paths, hosts)
    return paths
