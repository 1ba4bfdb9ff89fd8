"""A robust broker connection over several addresses: it fails over to the next node.

aio-pika's :class:`~aio_pika.RobustConnection` reconnects to the one URL it was given.
:class:`FailoverConnection` keeps its behaviour (channels, exchanges, queues and consumers
restored after a reconnect; one attempt every ``reconnect_interval``, 5 s by default) and only
changes where each attempt goes: after a connection is lost or an attempt fails, the next
attempt goes to the next address of the list, round and round, so a dead node is left at once
and a node that comes back is reached again in its turn.

Two aio-pika internals carry this (as of aio-pika 10; the cluster tests in ``tests/cluster``
fail if either changes): ``_on_connection_close`` is called both when an open
connection is lost and when an attempt fails, and each attempt begins by setting
``transport`` to None before it reads ``url``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import UnderlayConnection
from yarl import URL

from chassis.broker_urls import redact_url

log = logging.getLogger(__name__)


class FailoverConnection(RobustConnection):
    """A :class:`~aio_pika.RobustConnection` whose attempts go through ``urls`` in turn,
    starting with the first; :attr:`url` is the address of the current (or next) attempt."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        if not urls:
            raise ValueError("FailoverConnection needs at least one URL")
        self._urls = tuple(URL(url) for url in urls)
        self._index = 0
        self._move_on = False
        self._transport: UnderlayConnection | None = None
        super().__init__(self._urls[0], **kwargs)

    @property
    def urls(self) -> tuple[URL, ...]:
        """Every address, in the order they are tried from the first."""
        return self._urls

    @property
    def transport(self) -> UnderlayConnection | None:
        return self._transport

    @transport.setter
    def transport(self, value: UnderlayConnection | None) -> None:
        # Set to None at the start of each attempt (and on close): the moment to move on.
        if value is None and self._move_on and not self._close_called:
            self._next_url()
        self._transport = value

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Called when the open connection is lost and when an attempt fails.
        self._move_on = len(self._urls) > 1
        await super()._on_connection_close(closing)

    def _next_url(self) -> None:
        self._move_on = False
        previous = self.url
        self._index = (self._index + 1) % len(self._urls)
        self.url = self._urls[self._index]
        log.warning(
            "RabbitMQ at %s is lost or refused; trying %s",
            redact_url(str(previous)),
            redact_url(str(self.url)),
        )
