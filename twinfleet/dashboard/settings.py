"""How a dashboard is configured, checked once when it starts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LOCAL_HOSTS", "Settings", "needs_token"]

# The only addresses served without an access token: the default, and its spellings.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def needs_token(host: str) -> bool:
    """Any address but 127.0.0.1 (and its spellings) could be reached by someone else."""
    return host not in LOCAL_HOSTS


@dataclass(frozen=True)
class Settings:
    """A dashboard's settings.

    Args:
        store_path: the JSON file of saved queries and alert rules.
        host: the address to listen on; any but 127.0.0.1 requires `token`.
        port: the TCP port (0: any free one).
        read_only: hide and refuse every action.
        token: the access token; required off 127.0.0.1 (`with_token` makes one).
        query_budget: hub queries a minute that all viewers together may cost.
        cache_ttl: seconds a query result is reused.
        refresh_seconds: how often live pages poll the dashboard (not the hub).
        alert_interval: seconds between alert evaluations.
        method_timeout: seconds a direct method may take.

    Raises:
        ValueError: a setting is out of range, or a token is missing off 127.0.0.1.
    """

    store_path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    read_only: bool = False
    token: str | None = field(default=None, repr=False)
    query_budget: float = 12.0
    cache_ttl: float = 15.0
    refresh_seconds: float = 5.0
    alert_interval: float = 60.0
    method_timeout: int = 30

    def __post_init__(self) -> None:
        if needs_token(self.host) and not self.token:
            raise ValueError(
                f"the dashboard would listen on {self.host}, which others may reach: it needs "
                "an access token there (`twinfleet dashboard` makes one and prints it)"
            )
        if self.token is not None and len(self.token) < 16:
            raise ValueError("an access token has at least 16 characters")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.query_budget <= 0 or self.cache_ttl < 0 or self.refresh_seconds <= 0:
            raise ValueError("the query budget and refresh period are positive, the TTL >= 0")

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(24)
