"""Reported properties that reach the hub: patches merge while waiting and are retried until
delivered, with capped backoff, so no step the agent took goes unreported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Reporter", "merge"]

log = logging.getLogger(__name__)


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` merged into `base` (nested objects key by key; the newer value wins)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class Reporter:
    """Delivers reported patches in the background."""

    def __init__(
        self, send: Callable[[dict[str, Any]], Awaitable[None]], *, max_backoff: float = 30
    ) -> None:
        self._send = send
        self._pending: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._max_backoff = max_backoff

    def report(self, patch: dict[str, Any]) -> None:
        """Queue a patch (call on the agent's loop)."""
        self._pending = merge(self._pending, patch)
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued was delivered; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        backoff = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                patch, self._pending = self._pending, {}
                try:
                    await self._send(patch)
                    backoff = 0.5
                except asyncio.CancelledError:
                    self._pending = merge(patch, self._pending)
                    raise
                except Exception as exc:
                    self._pending = merge(patch, self._pending)
                    log.warning(
                        "reporting failed (%s); retrying in %.1f s", type(exc).__name__, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(self._max_backoff, backoff * 2)
            self._idle.set()
