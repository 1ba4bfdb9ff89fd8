"""Publishing a RunRequested to the commands queue, confirmed by the broker.

Used by ``recalculator trigger`` and by the cron. The message goes to the default exchange
under the queue's name with ``mandatory=True`` on a confirming channel, so it is either in the
durable queue when this returns, or an error is raised: a command is never silently lost.
"""

from __future__ import annotations

import logging
from uuid import NAMESPACE_URL, UUID, uuid5

from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology, publisher_channel
from contracts import RunRequested, Topology, encode_command

log = logging.getLogger(__name__)

_SLOT_NAMESPACE = uuid5(NAMESPACE_URL, "https://chainsights.one/jobs/cron-slot")


def slot_request_id(job_name: str, slot_iso: str) -> UUID:
    """The request id of a scheduled slot: the same for every cron that fires that slot, so
    two cron containers (or a restarted one) never start two runs for it."""
    return uuid5(_SLOT_NAMESPACE, f"{job_name}@{slot_iso}")


async def publish_run_request(
    connection: AbstractRobustConnection, topology: Topology, command: RunRequested
) -> None:
    """Declares the topology and publishes ``command`` to the commands queue; returns once the
    broker confirmed it. Raises aio-pika's error when it was not confirmed or not routed.
    Publishing twice is harmless: the worker runs one job per ``request_id``."""
    channel = await publisher_channel(connection)
    try:
        await declare_topology(channel, topology)
        await channel.default_exchange.publish(
            encode_command(command), routing_key=topology.commands_queue, mandatory=True
        )
    finally:
        await channel.close()
    log.info(
        "published RunRequested (%s) to %s",
        command.trigger,
        topology.commands_queue,
        extra={"request_id": command.request_id},
    )
