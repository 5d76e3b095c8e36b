"""`twinfleet firmware keygen` and `twinfleet firmware sign`: signing keys and image signatures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from twinfleet import signing

__all__ = ["app"]

app = typer.Typer(help="Sign firmware images for devices with a trust store.", no_args_is_help=True)


@app.command()
def keygen(
    name: str = typer.Argument(..., help="The key's name: writes NAME.key and NAME.pem."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write the two files."),
    as_json: bool = typer.Option(False, "--json", help="Print the two paths as JSON."),
) -> None:
    """Make an Ed25519 signing key: NAME.key (private, 0600; keep it off devices) and NAME.pem
    (public: put it in each device's trust store)."""
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise ValueError(f"{path} exists; choose another name or move it away first")
    private_pem, public_pem = signing.generate_key_pair()
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    if as_json:
        typer.echo(json.dumps({"privateKeyPath": str(private_path),
                               "publicKeyPath": str(public_path)}))  # fmt: skip
        return
    typer.echo(f"private key: {private_path}\npublic key:  {public_path}")


@app.command()
def sign(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="The image file."),
    key: Path = typer.Option(..., "--key", exists=True, dir_okay=False, help="NAME.key."),
    version: str = typer.Option(..., "--version", help="The image's firmware version."),
    security_floor: str | None = typer.Option(
        None, "--security-floor", help="Devices that install this image never go below it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the desired firmware fields."),
) -> None:
    """Sign IMAGE as firmware VERSION; prints the signature (fwPackageSignature)."""
    signed = signing.sign_image(image, key.read_bytes(), version, security_floor)
    typer.echo(json.dumps(signed.fields(), indent=2) if as_json else signed.signature)
