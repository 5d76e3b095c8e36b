"""What the agent raises.

The tree::

    AgentError
    ├── PermanentError        retrying cannot help (bad checksum, image too large, downgrade)
    ├── TemporaryError        may work later (network, HTTP 5xx); carries `delay`
    │   ├── ProvisioningFailed    DPS did not assign the device (unreachable, refused, disabled):
    │   │                         back off and register again; carries `registration_id`
    │   └── ConnectionLost        the hub connection broke before an answer came: try again
    ├── HubRefused            the hub refused the device's credentials (identity deleted,
    │                         disabled, or moved to another hub): provision again, if it can;
    │                         carries `after_connect`
    └── InvalidSettings       the device's configuration file is wrong; carries `field`
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConnectionLost",
    "HubRefused",
    "InvalidSettings",
    "PermanentError",
    "ProvisioningFailed",
    "TemporaryError",
]


class AgentError(Exception):
    """The root of the agent's errors; the message is what the device reports."""


class PermanentError(AgentError):
    """An update step failed in a way retrying will not fix."""


class TemporaryError(AgentError):
    """An update step failed for now; try again after `delay` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class ProvisioningFailed(TemporaryError):
    """The provisioning service did not assign the device; register again after a backoff.

    The message names the registration id and what the service (or the network) answered; it
    never holds the device's key.
    """

    def __init__(self, message: str, *, registration_id: str, delay: float = 5.0) -> None:
        super().__init__(message, delay=delay)
        self.registration_id = registration_id


class ConnectionLost(TemporaryError):
    """The connection to the hub broke before the hub answered a request; the SDK connects
    again by itself, so the request may be made again (a hub that refuses the device when it
    connects again is `HubRefused`, seen by the connection)."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message, delay=delay)


class HubRefused(AgentError):
    """The hub refused the device's credentials: its identity was deleted or disabled, or it
    was moved to another hub. A provisioned device registers again; one given a connection
    string cannot recover by itself.

    `after_connect` says whether the device had been connected in this session (the hub
    dropped it and refused the reconnection) rather than refused at the first connect.
    """

    def __init__(self, message: str, *, after_connect: bool = False) -> None:
        super().__init__(message)
        self.after_connect = after_connect


class InvalidSettings(AgentError):
    """The agent's settings (its TOML file or command-line options) are wrong.

    The message is one line naming the file, the setting (`field`, dotted as in the file) and
    the fix; it never contains a secret.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field
