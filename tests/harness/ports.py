"""Loopback ports that no other process can take between the moment they are picked and the
moment a server binds them.

A :class:`ReservedPort` is a socket bound to a free port (the kernel's pick) with
``SO_REUSEADDR`` and never listening. While it is open, the kernel hands that port to no other
``bind(("…", 0))`` and refuses a bind without ``SO_REUSEADDR``, but a server that sets it (every
asyncio, uvicorn and aiohttp server does) binds and listens on it, also after a restart. A
connection to a reserved port no server listens on is refused, so it is also the address of
"nothing listens here".
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Self


class ReservedPort:
    """A port on 127.0.0.1 held for a server of ours until :meth:`close`; ``with`` and
    ``async with`` (to sit beside other resources of a block) close it."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(("127.0.0.1", 0))
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])

    def close(self) -> None:
        """Let the port go (a server bound to it keeps it). Idempotent."""
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def reserved_ports(count: int) -> Iterator[list[int]]:
    """``count`` distinct reserved ports, held until the block ends."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(ReservedPort()).port for _ in range(count)]
