"""How far a consumer got: messages received, and messages settled, with a wait for a mark."""

from __future__ import annotations

import asyncio


class DeliveryProgress:
    """How many messages a consumer received and how many it has settled since it started."""

    def __init__(self) -> None:
        self.received = 0
        self.handled = 0
        self._changed = asyncio.Condition()

    def note_received(self) -> None:
        self.received += 1

    async def note_handled(self, count: int) -> None:
        """Count ``count`` messages as settled (acked, dead-lettered, or left to redelivery)."""
        async with self._changed:
            self.handled += count
            self._changed.notify_all()

    async def wait_handled(self, mark: int, timeout_s: float) -> bool:
        """Wait until ``mark`` messages are handled; False if that took over ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: self.handled >= mark)
        except TimeoutError:
            return False
        return True
