"""Consuming in batches: many messages, one handler call (one transaction), acks after it.

A batch is up to ``batch_size`` messages, or what arrived within ``batch_wait_s`` after its
first. Each body is parsed at the edge (a :class:`~chassis.consumer.Rejected` one is
dead-lettered at once); the models go to the batch handler in delivery order. The handler
returns the positions it refuses (``{index: Rejected}``, e.g. a key another event holds):
those are dead-lettered, the rest acked, one multiple-ack per channel.

| the batch handler …                 | what happens                                             |
|-------------------------------------|----------------------------------------------------------|
| returns                             | refused positions dead-lettered, the others acked        |
| raises a transient error            | the same batch is handed again (capped backoff), in      |
|                                     | place, until it passes or the consumer is stopped        |
| raises :class:`Rejected`            | each message is handed alone; one that is refused alone  |
|                                     | is dead-lettered with the reason, the others go on       |
| raises anything else                | logged with its traceback; the batch is requeued after a |
|                                     | pause (the queue's delivery limit bounds it)             |

Parsing yields to the event loop every :data:`PARSE_CHUNK` messages, so a large batch does not
hold the loop for its whole parse. On :meth:`stop` the messages already received are handled
before :meth:`run` returns (within the stop's timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, Unpack

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chassis.consumer import (
    M,
    Parse,
    QueueConsumer,
    Rejected,
    SettlingOptions,
    ack,
    channel_closed,
)
from chassis.retry import retry_transient
from chassis.topology import QueueSpec

log = logging.getLogger(__name__)

PARSE_CHUNK = 50
"""Messages parsed between two yields to the event loop (a yield costs about a microsecond,
parsing 50 messages about a millisecond)."""

BatchHandler = Callable[[Sequence[M]], Awaitable[Mapping[int, Rejected]]]
"""Does the work of a batch (one transaction) and returns the positions it refuses."""

_Parsed = list[tuple[AbstractIncomingMessage, M]]


class BatchConsumer(QueueConsumer, Generic[M]):
    """Hands batches of models to ``handler``; see the module docstring."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        parse: Parse[M],
        handler: BatchHandler[M],
        *,
        batch_size: int = 500,
        batch_wait_s: float = 0.05,
        on_retry: Callable[[BaseException], None] | None = None,
        max_backoff_s: float = 10.0,
        **settling: Unpack[SettlingOptions],
    ) -> None:
        """``on_retry`` is called with each transient error before the batch is handed again."""
        # A little above the batch size: a full batch can form while the previous one commits.
        prefetch = batch_size + max(10, batch_size // 5)
        super().__init__(connection, queue, prefetch, **settling)
        self.prefetch = prefetch
        self._parse = parse
        self._handler = handler
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._on_retry = on_retry
        self._max_backoff_s = max_backoff_s
        # None is the "stop" sentinel put in by stop(), after the messages already received.
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._finished = asyncio.Event()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.progress.note_received()
        self._inbox.put_nowait(message)

    async def _work(self) -> None:
        try:
            done = False
            while not done:
                batch, done = await self._next_batch()
                if batch:
                    try:
                        await self.handle_batch(batch)
                    finally:
                        await self.progress.note_handled(len(batch))
        finally:
            self._finished.set()

    async def _finish(self, timeout_s: float) -> None:
        self._inbox.put_nowait(None)
        try:
            await asyncio.wait_for(self._finished.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "the batch in hand was not done in %.0fs; it will be redelivered", timeout_s
            )

    async def _next_batch(self) -> tuple[list[AbstractIncomingMessage], bool]:
        first = await self._inbox.get()
        if first is None:
            return [], True
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait_s
        while len(batch) < self._batch_size:
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._inbox.get(), remaining)
                except TimeoutError:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def handle_batch(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        """Dead-letter what does not parse, hand the rest over, settle every message."""
        parsed: _Parsed[M] = []
        for index, message in enumerate(batch):
            if index and index % PARSE_CHUNK == 0:
                await asyncio.sleep(0)
            if channel_closed(message):
                continue  # the broker took it back: it comes again on the current channel
            try:
                parsed.append((message, self._parse(message.body)))
            except Rejected as rejected:
                await self._dead_letter(message, rejected)
        if not parsed:
            return
        try:
            await self._hand_over(parsed)
        except Exception as exc:
            await self._requeue_after_failure([m for m, _ in parsed], exc)

    async def _hand_over(self, parsed: _Parsed[M]) -> None:
        try:
            refused = await self._call(parsed)
        except Rejected as whole:
            if len(parsed) == 1:
                await self._dead_letter(parsed[0][0], whole)
                return
            log.warning("a batch was refused (%s); handing its messages one at a time", whole)
            for one in parsed:
                try:
                    await self._hand_over([one])
                except Exception as exc:
                    await self._requeue_after_failure([one[0]], exc)
            return
        await self._settle(parsed, refused)

    async def _call(self, parsed: _Parsed[M]) -> Mapping[int, Rejected]:
        models = [model for _, model in parsed]

        async def step() -> Mapping[int, Rejected]:
            return await self._handler(models)

        return await retry_transient(
            step,
            what=f"handle a batch of {len(models)} from {self.attachment.queue_name}",
            is_transient=self._is_transient,
            on_retry=self._on_retry,
            first_backoff_s=0.1,
            max_backoff_s=self._max_backoff_s,
        )

    async def _settle(self, parsed: _Parsed[M], refused: Mapping[int, Rejected]) -> None:
        for index, rejected in refused.items():
            await self._dead_letter(parsed[index][0], rejected)
        await ack_all([m for i, (m, _) in enumerate(parsed) if i not in refused])


async def ack_all(messages: Sequence[AbstractIncomingMessage]) -> None:
    """Ack ``messages`` with one multiple-ack (of the highest tag) per channel.

    Safe only when every earlier delivery on those channels is settled already: batches are
    taken in delivery order and each is settled before the next.
    """
    last: dict[int, AbstractIncomingMessage] = {}
    orphans = 0
    for message in messages:
        if channel_closed(message):
            orphans += 1
            continue
        key = id(message.channel)
        held = last.get(key)
        if held is None or (message.delivery_tag or 0) > (held.delivery_tag or 0):
            last[key] = message
    for message in last.values():
        await ack(message, multiple=True)
    if orphans:
        log.warning(
            "%d handled messages not acked, their channel closed (they will be redelivered)",
            orphans,
        )
