"""`TwinManager`: the back end's handle on a fleet, on Azure IoT Hub or the local hub alike.

A small facade over one concern per attribute::

    fleet.devices          identities, keys, connection strings       (twin_manager.devices)
    fleet.twins            read, patch and replace twins               (twin_manager.twins)
    fleet.methods          direct methods                              (twin_manager.methods)
    fleet.queries          queries, pages, counts, GROUP BY            (twin_manager.querying)
    fleet.jobs             scheduled twin-update and method jobs       (twin_manager.jobs)
    fleet.configurations   automatic device configurations            (twin_manager.configurations)

Every call goes through the official `azure-iot-hub` SDK (`twin_manager._sdk`, the one module
that imports it), retried on transient failures (`retrying.RetryPolicy`) and translated into
`twin_manager.errors`. Queries are parsed locally first, so a bad query fails with its position
before any request is made. It is thread-safe: each thread uses SDK clients of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Protocol

from twin_manager import artifacts, hubdirs, provisioning, schemes
from twin_manager._sdk import Sdk
from twin_manager.configurations import Configurations
from twin_manager.devices import Devices
from twin_manager.jobs import Jobs
from twin_manager.methods import Methods
from twin_manager.querying import Queries
from twin_manager.retrying import RetryPolicy
from twin_manager.twins import Twins
from twin_manager.usage import Usage

__all__ = ["HubLike", "TwinManager"]

log = logging.getLogger(__name__)


class HubLike(Protocol):
    """What `from_local_hub` needs of a hub (a `local_hub.LocalHub` has it)."""

    @property
    def service_connection_string(self) -> str: ...
    @property
    def ca_certificate_path(self) -> str: ...
    @property
    def device_host_name(self) -> str: ...
    @property
    def gateway_host_name(self) -> str: ...


class TwinManager:
    """Devices, twins, methods, queries, jobs and configurations of one hub.

    Args:
        connection_string: a service connection string (e.g. the `iothubowner` policy's).
        ca_file: a CA file to trust for this hub's TLS, for this client only (the local hub's).
        retry: the retry policy for transient failures.
        device_host_name: the HostName devices use, when it differs from the service's.
        gateway_host_name: the GatewayHostName devices dial, if any.
        scheme: the fleet's metadata scheme (`twin_manager.schemes`): tag writes and query
            paths are checked against it before anything is sent; None checks nothing.

    Attributes:
        devices: device identities (`Devices`).
        twins: device twins (`Twins`).
        methods: direct methods (`Methods`).
        queries: queries over the twins (`Queries`).
        jobs: scheduled jobs (`Jobs`).
        configurations: automatic device configurations (`Configurations`).
        scheme: the fleet's metadata scheme, or None.
        usage: the requests this manager sent, per IoT Hub throttle (see `twin_manager.usage`).
        provisioning: the Device Provisioning Service the fleet's devices register through,
            if it uses one (set it to let retirement stop devices from provisioning again).
    """

    def __init__(
        self,
        connection_string: str,
        *,
        ca_file: str | None = None,
        retry: RetryPolicy | None = None,
        device_host_name: str | None = None,
        gateway_host_name: str | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> None:
        self.usage = Usage()  # what this manager asked of the hub, per IoT Hub throttle
        sdk = Sdk(connection_string, ca_file, retry or RetryPolicy(), self.usage)
        self.scheme = scheme
        self.provisioning: provisioning.ProvisioningService | None = None
        self._sdk = sdk
        self._connection_string = connection_string
        self._ca_file = ca_file
        # Devices name the hub without the service port (`HostName=10.0.0.5:8443` in a local
        # hub's service connection string; Azure's host names carry none): they dial 8883.
        self.devices = Devices(
            sdk, device_host_name or _without_port(sdk.host_name), gateway_host_name
        )
        self.twins = Twins(sdk, scheme)
        self.methods = Methods(sdk)
        self.queries = Queries(sdk, scheme.paths if scheme is not None else None)
        self.jobs = Jobs(sdk, self.queries, scheme)
        self.configurations = Configurations(sdk, self.queries)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, ca_file: str | None = None,
        retry: RetryPolicy | None = None, scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for the hub the connection string names (Azure IoT Hub or a local hub)."""
        return cls(connection_string, ca_file=ca_file, retry=retry, scheme=scheme)

    @classmethod
    def from_hub_dir(
        cls, data_dir: Path | str, *, retry: RetryPolicy | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for the local hub running in `data_dir` (`twinfleet hub serve --data-dir`).

        Raises:
            HubConfigurationError: no hub runs there, or its CA file is missing.
        """
        info = hubdirs.read_hub_dir(data_dir)
        return cls(
            info.service_connection_string,
            ca_file=info.ca_file,
            retry=retry,
            device_host_name=info.device_host_name,
            gateway_host_name=info.gateway_host_name,
            scheme=scheme,
        )

    @classmethod
    def from_local_hub(
        cls, hub: HubLike, *, retry: RetryPolicy | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for a running `local_hub.LocalHub` (trusting its CA)."""
        return cls(
            hub.service_connection_string,
            ca_file=hub.ca_certificate_path,
            retry=retry,
            device_host_name=hub.device_host_name,
            gateway_host_name=hub.gateway_host_name,
            scheme=scheme,
        )

    def artifact_store(self) -> artifacts.ArtifactStore:
        """The hub's artifact store (a local hub's; Azure IoT Hub has none)."""
        return artifacts.ArtifactStore(self._connection_string, ca_file=self._ca_file)

    def __enter__(self) -> TwinManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release nothing yet held beyond each call; kept for symmetry and future pooling."""

    def release_thread(self) -> None:
        """Close the SDK clients the calling thread made (each thread has its own): a worker
        thread calls it before it ends, so no HTTP session outlives it."""
        self._sdk.release()


def _without_port(host: str) -> str:
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host
