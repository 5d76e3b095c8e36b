"""What the agent raises.

The tree::

    AgentError
    ├── PermanentError        retrying cannot help (bad checksum, image too large, downgrade)
    ├── TemporaryError        may work later (network, HTTP 5xx); carries `delay`
    └── InvalidSettings       the device's configuration file is wrong; carries `field`
"""

from __future__ import annotations

__all__ = ["AgentError", "InvalidSettings", "PermanentError", "TemporaryError"]


class AgentError(Exception):
    """The root of the agent's errors; the message is what the device reports."""


class PermanentError(AgentError):
    """An update step failed in a way retrying will not fix."""


class TemporaryError(AgentError):
    """An update step failed for now; try again after `delay` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class InvalidSettings(AgentError):
    """The agent's settings (its TOML file or command-line options) are wrong.

    The message is one line naming the file, the setting (`field`, dotted as in the file) and
    the fix; it never contains a secret.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field
