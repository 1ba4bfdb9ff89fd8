"""Publishing a RunRequested to the commands queue, confirmed by the broker, and hearing its
answer.

Used by ``recalculator trigger`` and by the cron. The message goes to the default exchange
under the queue's name with ``mandatory=True`` on a confirming channel, so it is either in the
durable queue when this returns, or an error is raised: a command is never silently lost.
:func:`answer_listener` hears the worker's RunAccepted or RunRefused for it on the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import NAMESPACE_URL, UUID, uuid5

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chassis.broker import declare_exchange, declare_topology, publisher_channel
from chassis.topology import Topology
from contracts import (
    BrokerNames,
    ContractError,
    RunAccepted,
    RunRefused,
    RunRequested,
    encode_command,
    parse_event,
)

log = logging.getLogger(__name__)

_SLOT_NAMESPACE = uuid5(NAMESPACE_URL, "https://chainsights.one/jobs/cron-slot")


def slot_request_id(job_name: str, slot_iso: str) -> UUID:
    """The request id of a scheduled slot: the same for every cron that fires that slot, so
    two cron containers (or a restarted one) never start two runs for it."""
    return uuid5(_SLOT_NAMESPACE, f"{job_name}@{slot_iso}")


async def publish_run_request(
    connection: AbstractRobustConnection, names: BrokerNames, command: RunRequested
) -> None:
    """Declares the whole topology and publishes ``command`` to the commands queue of ``names``;
    returns once the broker confirmed it. Raises aio-pika's error when it was not confirmed or
    not routed.
    Publishing twice is harmless: the worker runs one job per ``request_id``."""
    channel = await publisher_channel(connection)
    try:
        await declare_topology(channel, Topology.of(names))
        await channel.default_exchange.publish(
            encode_command(command), routing_key=names.commands_queue, mandatory=True
        )
    finally:
        await channel.close()
    log.info(
        "published RunRequested (%s) to %s",
        command.trigger,
        names.commands_queue,
        extra={"request_id": command.request_id},
    )


Answer = RunAccepted | RunRefused
WaitForAnswer = Callable[[float], Awaitable[Answer | None]]


@contextlib.asynccontextmanager
async def answer_listener(
    connection: AbstractRobustConnection, names: BrokerNames, command: RunRequested
) -> AsyncIterator[WaitForAnswer]:
    """Listens on the exchange for ``command``'s answer from the moment this enters (so enter
    before publishing); yields ``wait(timeout_s)``, which returns the answer, or None when none
    came within ``timeout_s``. Raises the broker's error when it cannot listen."""
    answers: asyncio.Queue[Answer] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()
        with contextlib.suppress(ContractError):  # not ours to judge: the ledger keeps it
            event = parse_event(message.body)
            if isinstance(event, Answer) and event.payload.request_id == command.request_id:
                answers.put_nowait(event)

    async def wait(timeout_s: float) -> Answer | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(answers.get(), timeout_s)
        return None

    channel = await connection.channel()
    try:
        await declare_exchange(channel, Topology.of(names))
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for kind in ("run.accepted", "run.refused"):
            await queue.bind(names.exchange, routing_key=f"{command.job_name}.{kind}")
        await queue.consume(on_message)
        yield wait
    finally:
        await channel.close()
