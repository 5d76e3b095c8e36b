"""Finding a running local hub from its data directory, as `twinfleet --hub-dir` does.

A local hub writes `hub.json` into its data directory while it runs: its service connection
string, the CA that signs its certificates, and the host names devices use. Paths in it are taken
as the hub wrote them (hubs before 0.2 wrote them relative to their own working directory, so
those are re-rooted at the data directory this reader was given).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from twin_manager import errors

__all__ = ["LocalHubInfo", "read_hub_dir"]


@dataclass(frozen=True)
class LocalHubInfo:
    """How to reach a running local hub.

    Attributes:
        service_connection_string: the hub owner's connection string (a secret).
        ca_file: the CA certificate that signs the hub's TLS certificates.
        device_host_name: the HostName devices put in their connection strings.
        gateway_host_name: the address devices dial.
    """

    service_connection_string: str
    ca_file: str
    device_host_name: str
    gateway_host_name: str


def read_hub_dir(data_dir: Path | str) -> LocalHubInfo:
    """Read `hub.json` of the hub running in `data_dir`.

    Raises:
        HubConfigurationError: no hub runs there, or its description or CA file is unusable.
    """
    data_dir = Path(data_dir)
    info_path = data_dir / "hub.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise errors.HubConfigurationError(
            f"No hub is running in {data_dir}: {info_path} is missing. Start one with "
            f"`twinfleet hub serve --data-dir {data_dir}`.",
            path=str(info_path),
        ) from None
    except (OSError, ValueError) as exc:
        raise errors.HubConfigurationError(
            f"Cannot read {info_path}: {exc}.", path=str(info_path)
        ) from None
    try:
        ca_file = _within(data_dir, Path(info["caCertificatePath"]), Path(info["dataDir"]))
        if not ca_file.is_file():
            raise errors.HubConfigurationError(
                f"The hub's CA certificate {ca_file} (named in {info_path}) does not exist.",
                path=str(ca_file),
            )
        return LocalHubInfo(
            service_connection_string=info["serviceConnectionString"],
            ca_file=str(ca_file.resolve()),
            device_host_name=info["deviceHostName"],
            gateway_host_name=info["gatewayHostName"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.HubConfigurationError(
            f"{info_path} is not a local hub's description (missing or wrong {exc}).",
            path=str(info_path),
        ) from None


def _within(data_dir: Path, path: Path, hub_data_dir: Path) -> Path:
    """`path` as the hub wrote it, re-rooted at `data_dir` if the hub wrote it relatively."""
    if path.is_absolute():
        return path
    try:
        return data_dir / path.relative_to(hub_data_dir)
    except ValueError:
        return data_dir / path
