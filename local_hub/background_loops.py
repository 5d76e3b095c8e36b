"""`BackgroundLoop`: runs one server (an object with `start()`/`stop()` coroutines) on an event
loop of its own, on a thread of its own; what `LocalHub` and `LocalDps` are built on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class _Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


class BackgroundLoop(Generic[S]):
    """A server running on a background thread; `start(build)` then `stop()`, from any thread.

    Args:
        thread_name: the thread's name (shown in thread dumps).
    """

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: S | None = None
        """The server `build` made (set before it starts; kept after `stop()`)."""

    def start(self, build: Callable[[], S]) -> None:
        """Build the server on the new loop's thread and return once its `start()` has finished.

        Raises:
            BaseException: what building or starting raised; the server is stopped, the loop
                closed and the thread ended before it is raised.
        """
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            server: S | None = None
            try:
                server = build()
                self.server = server
                loop.run_until_complete(server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                if server is not None:
                    loop.run_until_complete(server.stop())
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._thread_name)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop the server and end the thread; nothing when it is not running."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
