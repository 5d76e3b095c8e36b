"""Signed firmware: the device's trust store, the security floor, the pure-Python Ed25519
verifier, and the `twinfleet firmware` commands. Images are served by the hub's artifact
endpoint over HTTPS; keys and signatures are made by `cryptography`, as operators make them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from device_agent import FirmwareUpdater, SimulatedPlatform, TrustStore, _ed25519
from local_hub import LocalHub
from patterns.contracts import FirmwareDesired
from twin_manager import TwinManager
from twinfleet import signing

IMAGE = b"firmware image 2.0.0 " * 100


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, bytes]]:
    """Signing keys by name: (private PEM, public PEM)."""
    return {name: signing.generate_key_pair() for name in ("old", "new", "rogue")}


def _store(directory: Path, keys: dict[str, tuple[bytes, bytes]], *names: str) -> TrustStore:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / f"{name}.pem").write_bytes(keys[name][1])
    return TrustStore.load(directory)


def _desired(
    tmp_path: Path, upload: Any, keys: dict[str, tuple[bytes, bytes]], key: str | None,
    version: str = "2.0.0", floor: str | None = None, **extra: Any,
) -> FirmwareDesired:  # fmt: skip
    fields = upload(f"fw-{version}.bin", IMAGE)
    if key is not None:
        image = tmp_path / f"fw-{version}.bin"
        image.write_bytes(IMAGE)
        signed = signing.sign_image(image, keys[key][0], version, floor)
        fields = {**fields, **signed.fields()}
    return FirmwareDesired.model_validate({"fwVersion": version, **fields, **extra})


def _updater(
    hub: LocalHub, tmp_path: Path, store: TrustStore | None, *, floor: str | None = None,
    version: str = "1.0.0",
) -> tuple[FirmwareUpdater, SimulatedPlatform, list[dict[str, Any]]]:  # fmt: skip
    reports: list[dict[str, Any]] = []
    platform = SimulatedPlatform(tmp_path / "platform", initial_version=version)
    platform.boot()
    updater = FirmwareUpdater(
        platform, tmp_path / "agent", reports.append, ca_file=hub.ca_certificate_path,
        trust_store=store, security_floor=floor,
    )  # fmt: skip
    return updater, platform, reports


def _install(updater: FirmwareUpdater, platform: SimulatedPlatform, desired: Any) -> None:
    """Reconcile through the reboot the simulated platform asks for, as the agent would."""
    from device_agent import RebootRequested

    try:
        updater.reconcile(desired)
    except RebootRequested:
        platform.boot()
        updater.reconcile(desired)


def test_a_signed_image_installs(hub: LocalHub, upload: Any, tmp_path: Path, keys: Any) -> None:
    store = _store(tmp_path / "trust", keys, "new")
    updater, platform, reports = _updater(hub, tmp_path, store)
    _install(updater, platform, _desired(tmp_path, upload, keys, "new"))
    assert platform.current_version() == "2.0.0"
    assert reports[-1]["firmware"]["fwUpdateStatus"] == "current"


@pytest.mark.parametrize(
    ("key", "tamper", "named"),
    [
        (None, {}, "not signed"),
        ("rogue", {}, "does not verify with any of the 1 trusted keys"),
        ("new", {"fwVersion": "9.0.0"}, "does not verify"),  # a signed image relabelled
        ("new", {"fwSecurityFloor": "0.1"}, "does not verify"),  # a floor it was not signed with
        ("new", {"fwPackageSignature": "bm90IGEgc2lnbmF0dXJl"}, "not a base64 Ed25519"),
    ],
)
def test_unsigned_wrongly_signed_or_tampered_images_are_refused_before_download(
    hub: LocalHub, upload: Any, tmp_path: Path, keys: Any, key: str | None,
    tamper: dict[str, Any], named: str,
) -> None:  # fmt: skip
    store = _store(tmp_path / "trust", keys, "new")
    updater, platform, reports = _updater(hub, tmp_path, store)
    desired = _desired(tmp_path, upload, keys, key)
    desired = FirmwareDesired.model_validate({**desired.model_dump(by_alias=True), **tamper})
    updater.reconcile(desired)
    reported = reports[-1]["firmware"]
    assert reported["fwUpdateStatus"] == "error"
    assert reported["fwUpdateSubstatus"].startswith("refused: ")
    assert named in reported["fwUpdateSubstatus"]
    assert platform.current_version() == "1.0.0"
    assert not updater.image.exists()  # nothing was downloaded


def test_keys_roll_over(hub: LocalHub, upload: Any, tmp_path: Path, keys: Any) -> None:
    # Devices shipped trusting only the old key refuse images signed with the new one; devices
    # trusting both (the rollover release) take images signed with either.
    only_old, platform, reports = _updater(
        hub, tmp_path / "a", _store(tmp_path / "t1", keys, "old")
    )
    only_old.reconcile(_desired(tmp_path, upload, keys, "new"))
    assert "does not verify" in reports[-1]["firmware"]["fwUpdateSubstatus"]
    both = _store(tmp_path / "t2", keys, "old", "new")
    assert sorted(both.keys) == ["new.pem", "old.pem"]
    for signer, version in (("old", "2.0.0"), ("new", "3.0.0")):
        updater, platform, reports = _updater(hub, tmp_path / signer, both)
        _install(updater, platform, _desired(tmp_path, upload, keys, signer, version))
        assert platform.current_version() == version


def test_the_security_floor_holds_even_with_force(
    hub: LocalHub, upload: Any, tmp_path: Path, keys: Any
) -> None:
    store = _store(tmp_path / "trust", keys, "new")
    updater, platform, reports = _updater(hub, tmp_path, store)
    _install(updater, platform, _desired(tmp_path, upload, keys, "new", "2.0.0", floor="2.0.0"))
    assert platform.current_version() == "2.0.0"
    # The floor was recorded: a restarted agent (same state directory) still has it.
    restarted = FirmwareUpdater(
        platform, tmp_path / "agent", reports.append, ca_file=hub.ca_certificate_path,
        trust_store=store,
    )  # fmt: skip
    assert restarted.floor == "2.0.0"
    restarted.reconcile(_desired(tmp_path, upload, keys, "new", "1.5.0", force=True))
    substatus = reports[-1]["firmware"]["fwUpdateSubstatus"]
    assert "below this device's security floor 2.0.0; force cannot override it" in substatus
    assert platform.current_version() == "2.0.0"


def test_the_agents_floor_applies_without_a_trust_store_and_an_unsigned_floor_is_ignored(
    hub: LocalHub, upload: Any, tmp_path: Path, keys: Any
) -> None:
    updater, platform, reports = _updater(hub, tmp_path, None, floor="1.2.0", version="1.5.0")
    updater.reconcile(_desired(tmp_path, upload, keys, None, "1.1.0", force=True))
    assert (
        "below this device's security floor 1.2.0" in reports[-1]["firmware"]["fwUpdateSubstatus"]
    )
    _install(updater, platform, _desired(tmp_path, upload, keys, None, "3.0.0", floor="3.0.0"))
    assert platform.current_version() == "3.0.0"
    assert updater.floor == "1.2.0"  # anyone can write desired: an unsigned floor raises nothing


def test_an_agent_with_a_trust_store_over_the_wire(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, upload: Any, tmp_path: Path,
    keys: Any, eventually: Any,
) -> None:  # fmt: skip
    _store(tmp_path / "trust", keys, "old", "new")
    sim_device("signed-1", trust_store=tmp_path / "trust")
    unsigned = _desired(tmp_path, upload, keys, None, "2.0.0").model_dump(by_alias=True)
    fleet.twins.update_desired("signed-1", {"firmware": unsigned})
    reported = eventually(
        lambda: (fleet.twins.get("signed-1").reported.get("firmware") or {}).get(
            "fwUpdateSubstatus"
        )
    )
    assert "not signed" in reported
    signed = _desired(tmp_path, upload, keys, "new", "2.0.0").model_dump(by_alias=True)
    fleet.twins.update_desired("signed-1", {"firmware": signed})
    eventually(
        lambda: (
            (fleet.twins.get("signed-1").reported.get("firmware") or {}).get("currentFwVersion")
            == "2.0.0"
        ),
        timeout=60,
    )


# -- the verifier and the commands ------------------------------------------------------------

RFC8032 = [  # (public key, message, signature) from RFC 8032 section 7.1, tests 1 to 3
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]  # fmt: skip


@pytest.mark.parametrize(("public", "message", "signature"), RFC8032)
def test_the_verifier_accepts_rfc_8032_vectors_and_nothing_near_them(
    public: str, message: str, signature: str
) -> None:
    key, data, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert _ed25519.verify(key, data, sig)
    assert not _ed25519.verify(key, data + b"x", sig)
    for index in (0, 31, 32, 63):
        bent = bytearray(sig)
        bent[index] ^= 0x01
        assert not _ed25519.verify(key, data, bytes(bent))
    # S + L is the same scalar but not canonical: refused, as RFC 8032 requires
    s = int.from_bytes(sig[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    assert not _ed25519.verify(key, data, sig[:32] + s.to_bytes(32, "little"))
    assert not _ed25519.verify(key[:31], data, sig)


@settings(max_examples=15)
@given(message=st.binary(max_size=64), seed=st.binary(min_size=32, max_size=32))
def test_the_verifier_agrees_with_cryptography(message: bytes, seed: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signature = private.sign(message)
    assert _ed25519.verify(public, message, signature)
    assert not _ed25519.verify(public, message + b"\0", signature)


def test_trust_store_refuses_files_that_are_not_keys(tmp_path: Path) -> None:
    (tmp_path / "a.pub").write_text(base64.b64encode(b"x" * 31).decode())
    with pytest.raises(ValueError, match="32-byte Ed25519 public key"):
        TrustStore.load(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        TrustStore.load(tmp_path / "empty")


def test_firmware_keygen_and_sign_commands(tmp_path: Path) -> None:
    def twinfleet(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "twinfleet", "firmware", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    made = twinfleet("keygen", "release", "--dir", str(tmp_path / "keys"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "keys/release.key").stat().st_mode & 0o777 == 0o600
    again = twinfleet("keygen", "release", "--dir", str(tmp_path / "keys"))
    assert again.returncode == 1
    assert "exists" in again.stderr
    image = tmp_path / "fw.bin"
    image.write_bytes(os.urandom(5000))
    signed = twinfleet("sign", str(image), "--key", str(tmp_path / "keys/release.key"),
                       "--version", "4.1.0", "--security-floor", "4.0.0", "--json")  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    fields = json.loads(signed.stdout)
    assert fields["fwPackageSize"] == 5000
    store = TrustStore.load(tmp_path / "keys")  # release.pem; the private key is not read
    desired = FirmwareDesired.model_validate({"fwPackageURI": "https://x/fw.bin", **fields})
    assert store.check(desired.statement(), desired.signature) == "release.pem"
    plain = twinfleet("sign", str(image), "--key", str(tmp_path / "keys/release.key"),
                      "--version", "4.1.0")  # fmt: skip
    assert len(base64.b64decode(plain.stdout.strip())) == 64
