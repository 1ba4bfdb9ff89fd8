"""Fault proxies in front of the cluster's AMQP ports, on an event loop of their own.

The cluster outlives any one test's event loop, so its proxies run on a loop in a background
thread; a test (sync or async) cuts or restores a node's client links from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from tests.support.faulty_proxy import FaultyProxy

T = TypeVar("T")


class LinkProxies:
    """One :class:`FaultyProxy` per target port, served by a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cluster-link-proxies", daemon=True
        )
        self._thread.start()
        self._proxies: dict[int, FaultyProxy] = {}

    def open(self, target_port: int) -> int:
        """Start a proxy to ``127.0.0.1:target_port``; returns the port it listens on."""

        async def started() -> FaultyProxy:
            return await FaultyProxy("127.0.0.1", target_port).__aenter__()

        proxy = self._run(started())
        self._proxies[target_port] = proxy
        return proxy.port

    def cut(self, target_port: int) -> None:
        """Drop every client link to that port and refuse new ones until :meth:`restore`."""
        self._call(self._proxies[target_port].cut)

    def restore(self, target_port: int) -> None:
        """Accept and forward again after :meth:`cut`. Idempotent."""
        proxy = self._proxies[target_port]
        self._call(proxy.restore)
        self._call(proxy.resume)

    def close(self) -> None:
        """Close every proxy and stop the thread. Idempotent."""
        if self._loop.is_closed():
            return
        for proxy in self._proxies.values():
            self._run(proxy.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def _call(self, fn: Callable[[], object]) -> None:
        async def call() -> None:
            fn()

        self._run(call())
