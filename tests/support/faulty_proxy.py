"""A :class:`TcpProxy` that can also stall a link (bytes held, connection open) or slow it.

Stalling is the fault a cut cannot show: a publish has left, its confirm has not come back,
and nothing says whether it will; a commit is on the wire and the answer is held. Whatever
the service does then must not mark a row sent or ack a message it cannot vouch for.
"""

from __future__ import annotations

import asyncio

from tests.support.tcp_proxy import TcpProxy


class FaultyProxy(TcpProxy):
    """``stall()`` holds every byte in both directions until ``resume()``; ``slow(s)`` delays
    each chunk by ``s`` seconds; ``cut()`` (inherited) drops every link and also lets held
    bytes go, into the dropped links."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.delay_s = 0.0

    async def __aenter__(self) -> FaultyProxy:
        await super().__aenter__()
        return self

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def slow(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def cut(self) -> None:
        super().cut()
        self._flowing.set()

    async def _before_forwarding(self) -> None:
        await self._flowing.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
