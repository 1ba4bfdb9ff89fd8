"""A durable queue bound to a stack's whole exchange: what the exchange really carried.

The campaign reads a run's outcome from it as well as from the ledger, so an event the
recalculator never put in its outbox, or one the ledger dropped, shows up: the tap is
declared before any service starts, is a quorum queue (it survives a broker restart), and
nobody consumes it until the stack is measured.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from chassis.broker import declare_exchange
from chassis.topology import Topology
from contracts.codec import ContractError, parse_event
from contracts.events import Event
from contracts.topology import BrokerNames


class ExchangeTap:
    """The queue ``<prefix>.tap`` bound with ``#`` to a topology's exchange."""

    def __init__(self, amqp_url: str, topology: BrokerNames) -> None:
        self.amqp_url = amqp_url
        self.topology = topology
        self.name = f"{topology.exchange.removesuffix('.events')}.tap"
        self.unreadable = 0
        """Messages taken that are no event of the contract (the poison scenario's)."""

    async def declare(self) -> None:
        """Declare the exchange (as any service would) and the bound tap. Idempotent."""
        connection = await aio_pika.connect(self.amqp_url, timeout=30)
        try:
            channel = await connection.channel()
            exchange = await declare_exchange(channel, Topology.of(self.topology))
            queue = await channel.declare_queue(
                self.name, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange, routing_key="#")
        finally:
            await connection.close()

    async def take_all(self, timeout_s: float = 120) -> list[Event]:
        """Every event the tap holds, once each (by ``event_id``, first copy kept). Consumes
        them: call once the stack has settled. Raises ``TimeoutError`` when the messages the
        broker counted do not all come within ``timeout_s``."""
        connection = await aio_pika.connect(self.amqp_url, timeout=30)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=2000)
            queue = await channel.declare_queue(self.name, passive=True)
            expected = int(queue.declaration_result.message_count or 0)
            bodies: list[bytes] = []
            done = asyncio.Event()
            if expected == 0:
                done.set()

            async def take(message: AbstractIncomingMessage) -> None:
                bodies.append(message.body)
                if len(bodies) >= expected:
                    done.set()

            tag = await queue.consume(take, no_ack=True)
            await asyncio.wait_for(done.wait(), timeout_s)
            await queue.cancel(tag)
        finally:
            await connection.close()
        events: dict[str, Event] = {}
        for body in bodies:
            try:
                event = parse_event(body)
            except ContractError:
                self.unreadable += 1
                continue
            events.setdefault(str(event.event_id), event)
        return list(events.values())

    async def delete(self) -> None:
        """Remove the tap. Idempotent; never raises for a broker that is away."""
        with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
            connection = await aio_pika.connect(self.amqp_url, timeout=10)
            try:
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await (await connection.channel()).queue_delete(self.name)
            finally:
                await connection.close()
