"""The broker connection: connect with a clear error, declare a given topology, open channels.

``AMQP_URL`` may name several nodes of a cluster, comma-separated: :func:`connect` takes the
first that answers and fails over to the next when its node is lost.

Every service calls :func:`declare_topology` at start with the whole topology of the system, so
the durable queues of the system of record exist whichever service connects first (no event
goes into an exchange with no queue).
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)

from chassis.broker_urls import parse_amqp_urls, redact_url
from chassis.failover import FailoverConnection
from chassis.topology import QueueSpec, Topology

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """RabbitMQ did not answer at start; the message says where we tried (without secrets)."""


async def connect(url: str, *, timeout_s: float = 10.0, name: str = "") -> FailoverConnection:
    """Return a robust connection to the first address of ``url`` that answers.

    ``url`` is one AMQP URL or several, comma-separated (one per cluster node). Each address
    gets ``timeout_s``. Once connected, the connection reconnects by itself, to the next address
    in turn when its node is lost (see :class:`~chassis.failover.FailoverConnection`).
    Raises ``BrokerUnavailable`` when no address answers, or when ``url`` is not a list of AMQP
    URLs.
    """
    try:
        urls = parse_amqp_urls(url)
    except ValueError as exc:
        raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc}") from None
    failures = []
    for start in range(len(urls)):
        connection = FailoverConnection(
            urls[start:] + urls[:start],
            client_properties={"connection_name": name or "chainsights-jobs"},
        )
        try:
            await connection.connect(timeout=timeout_s)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            await connection.close()
            failures.append(f"{redact_url(urls[start])}: {exc or type(exc).__name__}")
            continue
        if start:
            log.warning(
                "connected to RabbitMQ at %s; no answer from %s",
                redact_url(urls[start]),
                "; ".join(failures),
            )
        return connection
    raise BrokerUnavailable(f"cannot connect to RabbitMQ at {'; '.join(failures)}")


async def declare_exchange(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_queue(
    channel: AbstractChannel, spec: QueueSpec, exchange: AbstractExchange | None
) -> AbstractQueue:
    """Declare ``spec``'s dead-letter queue, the queue itself and its bindings; idempotent."""
    await channel.declare_queue(
        spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
    for key in spec.bindings:
        if exchange is None:
            raise ValueError(f"queue {spec.name} has bindings but no exchange was declared")
        await queue.bind(exchange, routing_key=key)
    return queue


async def declare_topology(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """Declare the exchange and every queue of ``topology``; return the exchange. Idempotent."""
    exchange = await declare_exchange(channel, topology)
    for spec in topology.queues:
        await declare_queue(channel, spec, exchange)
    log.debug("declared topology on exchange %s", topology.exchange)
    return exchange


async def publisher_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    """A channel with publisher confirms, on which an unroutable mandatory publish raises.

    A message no queue takes is a message not delivered: the outbox must keep it.
    """
    return await connection.channel(publisher_confirms=True, on_return_raises=True)


def message_headers(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    return dict(message.headers or {})
