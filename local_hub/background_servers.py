"""`BackgroundServer`: the base of `LocalHub` and `LocalDps`, which run one server (an object
with `start()`/`stop()` coroutines) on an event loop of its own, on a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = ["BackgroundServer"]

T = TypeVar("T")


class _Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


class BackgroundServer(Generic[S]):
    """A server on a background thread: `start()`/`close()` or `with`, from any thread.

    Subclasses say how to build the server (`_build`, called on the server's thread).

    Args:
        thread_name: the thread's name (shown in thread dumps).
        not_running: the message of the RuntimeError `server` raises before a start.
    """

    def __init__(self, thread_name: str, not_running: str) -> None:
        self._thread_name = thread_name
        self._not_running = not_running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: S | None = None

    def _build(self) -> S:
        raise NotImplementedError

    def start(self) -> Self:
        """Build and start the server; return once its `start()` has finished.

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
                server = self._build()
                self._server = server
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
        return self

    def close(self) -> None:
        """Stop the server and end its thread; nothing when it is not running."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def server(self) -> S:
        """The running server (RuntimeError before a start)."""
        if self._server is None:
            raise RuntimeError(self._not_running)
        return self._server

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
