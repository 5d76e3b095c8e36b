"""The hub's TLS material and its SQLite store, on their own."""

from __future__ import annotations

import shutil
import sqlite3
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from local_hub import certs, store


def test_certificates_are_strict_valid_and_cover_every_host(tmp_path: Path) -> None:
    paths = certs.ensure_certificates(tmp_path, ["127.0.0.9", "hub.example"])
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.9", "127.0.0.1"}
    assert set(san.get_values_for_type(x509.DNSName)) >= {"hub.example", "localhost"}
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    if shutil.which("openssl"):
        checked = subprocess.run(
            ["openssl", "verify", "-x509_strict", "-CAfile", paths.ca_cert, paths.server_cert],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_certificates_are_kept_and_reissued_only_for_a_new_host(tmp_path: Path) -> None:
    first = certs.ensure_certificates(tmp_path, ["127.0.0.9"])
    ca, leaf = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = certs.ensure_certificates(tmp_path, ["127.0.0.9"])
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, leaf)
    moved = certs.ensure_certificates(tmp_path, ["127.0.0.10"])
    assert moved.ca_cert.read_bytes() == ca
    assert moved.server_cert.read_bytes() != leaf


def test_bundle_holds_system_cas_and_the_hub_ca(tmp_path: Path) -> None:
    paths = certs.ensure_certificates(tmp_path, ["127.0.0.9"])
    bundle = paths.bundle.read_text()
    assert bundle.endswith(paths.ca_cert.read_text())
    system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if Path(system).is_file():
        assert bundle.count("BEGIN CERTIFICATE") > 1
    ssl.create_default_context(cafile=paths.bundle)  # loads as one CA file


def test_server_context_offers_tls_1_2(tmp_path: Path) -> None:
    context = certs.server_ssl_context(certs.ensure_certificates(tmp_path, ["127.0.0.9"]))
    assert context.minimum_version <= ssl.TLSVersion.TLSv1_2


_TWIN = {
    "tags": {}, "desired": {}, "desiredMeta": {}, "desiredVersion": 1, "reported": {},
    "reportedMeta": {}, "reportedVersion": 1, "version": 1, "etagCounter": 1,
}  # fmt: skip


def test_store_records_its_schema_version_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = store.Store(path)
    assert db.schema_version == store.SCHEMA_VERSION
    db.close()
    reopened = store.Store(path)
    assert reopened.schema_version == store.SCHEMA_VERSION
    reopened.close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version (version) VALUES (?)", (store.SCHEMA_VERSION + 1,))
    raw.close()
    with pytest.raises(store.SchemaTooNew, match="written by a newer hub"):
        store.Store(path)


def test_store_is_wal_with_full_sync_and_bounds_telemetry(tmp_path: Path) -> None:
    db = store.Store(tmp_path / "hub.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        db.insert_device("d1", {"deviceId": "d1"}, _TWIN)
        for i in range(store.TELEMETRY_KEPT + 20):
            db.add_telemetry("d1", f"t{i}", {"n": str(i)}, b"x")
        kept = db.telemetry("d1")
        assert len(kept) == store.TELEMETRY_KEPT
        assert kept[-1][1] == {"n": str(store.TELEMETRY_KEPT + 19)}
        db.delete_device("d1")
        assert db.telemetry("d1") == []
    finally:
        db.close()
